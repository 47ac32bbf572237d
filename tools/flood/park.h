// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Keeps an XDP program in the kernel's XDP dispatcher so that
// BPF_PROG_TEST_RUN calls on it do not each wait for an RCU grace period.
#pragma once

#include <string>

namespace flood {

// Every BPF_PROG_TEST_RUN of an XDP program adds it to the kernel's XDP
// dispatcher and removes it afterwards, and each change waits for an RCU
// grace period (~25 ms on the 2-vCPU VM): without care a call costs 25 ms
// whatever it runs. A program attached to some device stays in the
// dispatcher, so the test runs leave it alone. This attaches the program
// (generic mode) to the loopback device of a private, anonymous network
// namespace that nothing else can reach and no packet ever crosses. The
// namespace, and with it the attachment, is gone when the returned fd is
// closed or the process exits. Returns -1, with *why set, if not possible
// (the test runs then work, only slowly).
int parkInDispatcher(int progFd, std::string* why);

}  // namespace flood
