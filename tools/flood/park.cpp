// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "park.h"

#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace flood {

int parkInDispatcher(int progFd, std::string* why)
{
    int nsFd = -1;
    std::string note;
    // A thread of its own: unshare() moves only the calling thread, which
    // then ends; the fd keeps the namespace alive.
    std::thread t([&] {
        if (unshare(CLONE_NEWNET) < 0) {
            note = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            note = std::string("open own netns: ") + std::strerror(errno);
            return;
        }
        int lo = int(if_nametoindex("lo"));
        int err = lo ? bpf_xdp_attach(lo, progFd, XDP_FLAGS_SKB_MODE, nullptr) : -ENODEV;
        if (err) {
            note = std::string("attach to a private lo: ") + std::strerror(-err);
            close(fd);
            return;
        }
        nsFd = fd;
    });
    t.join();
    if (why)
        *why = note;
    return nsFd;
}

}  // namespace flood
