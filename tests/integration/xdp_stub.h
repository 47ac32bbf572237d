// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A two-instruction XDP program (r0 = verdict; exit) that is not sluice's:
// a baseline for the benchmarks, a receiver that turns on veth's NAPI path,
// or another program sitting on an interface sluice wants.
#pragma once

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace slit {

// The program's fd; the caller closes it. Throws when the kernel refuses it.
inline int loadXdpVerdict(int verdict, const char* name)
{
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, verdict},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", insns, 2, nullptr);
    if (fd < 0)
        throw std::runtime_error(std::string("cannot load the XDP program ") + name + ": " + std::strerror(-fd));
    return fd;
}

}  // namespace slit
