// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The verifier's budget. The kernel refuses a program whose verification
// walks more than 1M instructions (BPF_COMPLEXITY_LIMIT_INSNS), and how many
// it walks depends on the compiler as much as on the source: before the
// parser and the charge became global functions (bpf/sluice.bpf.c), clang 14's
// sluice_xdp took 859k and clang 19's went over the limit. Both objects the
// build makes, build/sluice.bpf.o (clang) and build/sluice-clang-19.bpf.o
// (clang-19, Debian trixie's compiler), must load with room to spare.
#include <linux/bpf.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include "datapath.h"

namespace {

// A quarter of the kernel's limit: room for the features still to come.
constexpr uint32_t kBudgetInsns = 250'000;

// The build directory: the test binary lives in build/tests/.
std::string buildDir()
{
    char exe[4096] = {};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    std::string dir = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "";
    dir = dir.substr(0, dir.rfind('/'));
    return dir.substr(0, dir.rfind('/'));
}

struct ObjectCloser {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
};

// Loads `prog` of the object at `path` on its own maps (none pinned) and
// returns the instructions the verifier walked, or an error message.
std::string verifiedInsns(const std::string& path, const char* prog, uint32_t* insns)
{
    if (access(path.c_str(), R_OK) != 0)
        return path + " is missing: `make all` builds it";
    LIBBPF_OPTS(bpf_object_open_opts, opts, .kconfig = sluice::Datapath::kconfigOverride());
    std::unique_ptr<bpf_object, ObjectCloser> obj(bpf_object__open_file(path.c_str(), &opts));
    if (!obj)
        return "cannot open " + path;
    bpf_map* map;
    bpf_object__for_each_map(map, obj.get()) {
        if (bpf_map__set_pin_path(map, nullptr))
            return "cannot unpin a map of " + path;
    }
    bpf_program* p = bpf_object__find_program_by_name(obj.get(), prog);
    if (!p)
        return path + " has no program " + prog;
    bpf_program* other;
    bpf_object__for_each_program(other, obj.get()) bpf_program__set_autoload(other, other == p);
    if (int err = bpf_object__load(obj.get()))
        return "the kernel refused " + std::string(prog) + " of " + path + ": error " + std::to_string(err);
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
        return "cannot read the program's info";
    *insns = info.verified_insns;
    return "";
}

class VerifierBudget : public testing::TestWithParam<const char*> {};

TEST_P(VerifierBudget, SluiceXdpLoadsWellInsideTheLimit)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "loading a program needs root (CAP_BPF)";
    const std::string path = buildDir() + "/" + GetParam();
    uint32_t insns = 0;
    const std::string err = verifiedInsns(path, "sluice_xdp", &insns);
    ASSERT_EQ(err, "");
    std::printf("[slit] %s: sluice_xdp verified in %u instructions (budget %u, kernel limit 1000000)\n",
                GetParam(), insns, kBudgetInsns);
    EXPECT_GT(insns, 0u) << "the kernel reported no verification";
    EXPECT_LE(insns, kBudgetInsns) << path;
}

INSTANTIATE_TEST_SUITE_P(Compilers, VerifierBudget, testing::Values("sluice.bpf.o", "sluice-clang-19.bpf.o"),
                         [](const testing::TestParamInfo<const char*>& info) {
                             return std::string(info.param) == "sluice.bpf.o" ? "clang" : "clang_19";
                         });

}  // namespace
