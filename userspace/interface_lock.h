// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One `sluice run` per interface: two would both reload it, and stopping
// one would detach it from under the other; `sluice detach` takes the same
// lock, so it cannot remove an interface from under a daemon either.
//
// The lock is a file under /run/sluice holding the owner's pid; the kernel
// drops it when the owner exits, however it exits, so a restart after a
// crash adopts as before. Interface names are per network namespace, so the
// lock's name carries the namespace's inode (IFACE.netINODE.lock): daemons
// for eth0 in two namespaces sharing /run do not collide. A clean release
// removes the file; one left by a crash is taken over by the next owner.
#pragma once

#include <string>

#include "unique_fd.h"

namespace sluice {

class InterfaceLock {
public:
    InterfaceLock(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
    InterfaceLock(InterfaceLock&&) = default;
    InterfaceLock& operator=(InterfaceLock&& other) noexcept;
    ~InterfaceLock() { release(); }

private:
    void release() noexcept;

    UniqueFd fd_;
    std::string path_;
};

// Takes IFACE's lock in this network namespace. Throws a runtime error
// naming the holder's pid when a live `sluice run` holds it.
InterfaceLock lockInterface(const std::string& iface);

}  // namespace sluice
