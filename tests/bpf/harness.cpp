// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "harness.h"

#include "error.h"

#include <bpf/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <sstream>

namespace sluice::test {

Ruleset Rules::make() const
{
    Ruleset r;
    r.policies = policies;
    for (const auto& c : allow)
        r.allow.push_back(Cidr::parse(c));
    for (const auto& c : deny)
        r.deny.push_back(Cidr::parse(c));
    return r;
}

Step expectStep(const Frame& f, int action, std::string policy, uint32_t verdict)
{
    Step s;
    s.frame = f;
    s.action = action;
    s.policy = std::move(policy);
    s.verdict = verdict;
    return s;
}

void PrintTo(const Row& row, std::ostream* os)
{
    *os << row.name;
}

std::string rowName(const testing::TestParamInfo<Row>& info)
{
    std::string n = info.param.name;
    for (auto& c : n)
        if (!isalnum(static_cast<unsigned char>(c)))
            c = '_';
    return n;
}

std::string verdictText(uint32_t verdict)
{
    static const char* names[] = {"PASS",    "ADMITTED", "LIMITED",   "MONITORED",
                                  "ALLOWED", "DENIED",   "MALFORMED", "FRAGMENT"};
    return verdict < SLUICE_VERDICT_COUNT ? names[verdict] : "verdict" + std::to_string(verdict);
}

std::string actionText(int action)
{
    switch (action) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    case kRefused: return "-EINVAL (test run refused)";
    default: return "action " + std::to_string(action);
    }
}

int testRun(int progFd, const Frame& frame, uint32_t* action, std::vector<uint8_t>* out)
{
    std::vector<uint8_t> buf(frame.bytes.size() + 512);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.bytes.data();
    opts.data_size_in = static_cast<uint32_t>(frame.bytes.size());
    opts.data_out = buf.data();
    opts.data_size_out = static_cast<uint32_t>(buf.size());
    opts.repeat = 1;
    int err = bpf_prog_test_run_opts(progFd, &opts);
    *action = opts.retval;
    if (out) {
        buf.resize(err ? 0 : opts.data_size_out);
        *out = std::move(buf);
    }
    return err;
}

namespace {

using CounterKey = std::pair<std::string, uint32_t>;  // (policy, verdict)
using Counters = std::map<CounterKey, sluice_counter>;

Counters snapshot(const Datapath& dp)
{
    Counters out;
    for (const auto& slot : dp.counters())
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
            auto& c = out[{slot.policy, v}];
            c.packets += slot.verdicts[v].packets;
            c.bytes += slot.verdicts[v].bytes;
        }
    return out;
}

std::string describe(const Counters& delta)
{
    std::ostringstream os;
    for (const auto& [k, c] : delta)
        os << " [" << (k.first.empty() ? "(no policy)" : k.first) << " " << verdictText(k.second)
           << " +" << c.packets << " pkt +" << c.bytes << " B]";
    return delta.empty() ? " (nothing counted)" : os.str();
}

Counters diff(const Counters& before, const Counters& after)
{
    Counters d;
    for (const auto& [k, c] : after) {
        sluice_counter b{};
        if (auto it = before.find(k); it != before.end())
            b = it->second;
        if (c.packets != b.packets || c.bytes != b.bytes)
            d[k] = {c.packets - b.packets, c.bytes - b.bytes};
    }
    return d;
}

void checkRemaining(const Datapath& dp, const Remaining& r)
{
    SCOPED_TRACE("source " + r.addr + " under " + r.policy);
    std::optional<SourceState> st;
    try {
        st = dp.source(r.policy, Address::parse(r.addr));
    } catch (const std::exception& e) {
        ADD_FAILURE() << "Datapath::source threw: " << e.what();
        return;
    }
    if (!r.units) {
        EXPECT_FALSE(st.has_value()) << "expected no bucket state";
        return;
    }
    ASSERT_TRUE(st.has_value()) << "expected bucket state, found none";
    ASSERT_EQ(st->limits.size(), r.units->size()) << "limits in the source state";
    for (size_t i = 0; i < r.units->size(); i++) {
        if ((*r.units)[i] == kAny)
            continue;
        EXPECT_EQ(st->limits[i].remaining, (*r.units)[i])
            << "remaining units of limit " << i << " (" << describeLimit(st->limits[i].limit)
            << ")";
    }
}

// Keeps the calling thread on the CPU it is on while alive: the data path
// keeps per-CPU state (counters), and a thread that
// migrated between two test runs would see another CPU's.
class PinnedHere {
public:
    PinnedHere()
    {
        ok_ = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0;
        int cpu = sched_getcpu();
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu < 0 ? 0 : cpu, &one);
        ok_ = ok_ && pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
    }
    ~PinnedHere() { pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_); }
    bool ok() const { return ok_; }

private:
    cpu_set_t saved_;
    bool ok_ = false;
};

// The program shared by Row::shared rows, loaded on first use.
Datapath* sharedDatapath()
{
    static std::optional<Datapath> dp;
    if (!dp)
        dp.emplace(Datapath::loadUnattached());
    return &*dp;
}

}  // namespace

TEST_P(BpfRow, Run)
{
    const Row& row = GetParam();
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN fixtures need root (CAP_BPF)";
    PinnedHere pinned;
    ASSERT_TRUE(pinned.ok()) << "cannot pin the test to one CPU";

    std::optional<Datapath> own;
    Datapath* dp = nullptr;
    try {
        if (row.shared) {
            dp = sharedDatapath();
        } else {
            own.emplace(Datapath::loadUnattached());
            dp = &*own;
        }
        dp->install(row.rules.make());
        if (row.shared)
            dp->resetAll();
    } catch (const std::exception& e) {
        FAIL() << "load/install failed: " << e.what();
    }
    ASSERT_GE(dp->progFd(), 0);

    for (size_t i = 0; i < row.steps.size(); i++) {
        const Step& s = row.steps[i];
        std::string where = "step " + std::to_string(i + 1);
        if (s.frame)
            where += ": " + s.frame->label + " (" + std::to_string(s.frame->size()) + " B)";
        if (!s.note.empty())
            where += " -- " + s.note;
        SCOPED_TRACE(where);

        if (s.install && s.installFails) {
            try {
                dp->install(s.install->make());
                ADD_FAILURE() << "install succeeded; expected a usage error";
            } catch (const Error& e) {
                EXPECT_EQ(e.kind(), ErrorKind::Usage) << e.what();
            } catch (const std::exception& e) {
                ADD_FAILURE() << "install threw a non-sluice error: " << e.what();
            }
        } else if (s.install) {
            try {
                dp->install(s.install->make());
            } catch (const std::exception& e) {
                FAIL() << "install failed: " << e.what();
            }
        }
        if (s.frame) {
            Counters before = snapshot(*dp);
            uint32_t action = 0;
            std::vector<uint8_t> out;
            int err = testRun(dp->progFd(), *s.frame, &action, &out);
            Counters delta = diff(before, snapshot(*dp));
            if (s.action == kRefused) {
                EXPECT_EQ(err, -EINVAL) << "a frame shorter than ETH_HLEN";
                EXPECT_TRUE(delta.empty()) << "counted:" << describe(delta);
            } else {
                ASSERT_EQ(err, 0) << "bpf_prog_test_run_opts: " << strerror(-err);
                EXPECT_EQ(actionText(static_cast<int>(action)), actionText(s.action));
                EXPECT_TRUE(out == s.frame->bytes) << "the program changed the frame";
                Counters want;
                want[{s.policy, s.verdict}] = {1, s.frame->size()};
                EXPECT_EQ(describe(delta), describe(want));
            }
        }
        for (const auto& r : s.checks)
            checkRemaining(*dp, r);
    }
}

}  // namespace sluice::test
