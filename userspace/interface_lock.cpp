// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "interface_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "config.h"
#include "error.h"

namespace sluice {

InterfaceLock& InterfaceLock::operator=(InterfaceLock&& other) noexcept
{
    if (this != &other) {
        release();
        fd_ = std::move(other.fd_);
        path_ = std::move(other.path_);
    }
    return *this;
}

void InterfaceLock::release() noexcept
{
    // Unlinked while still held: whoever opened it meanwhile fails to lock
    // it and says the interface is managed, which it was.
    if (fd_.get() >= 0)
        ::unlink(path_.c_str());
    fd_.reset();
}

InterfaceLock lockInterface(const std::string& iface)
{
    // The name becomes part of a path.
    if (!validInterfaceName(iface))
        throwUsage("invalid interface name '" + iface + "' (see `ip link`)");
    struct stat ns;
    if (::stat("/proc/self/ns/net", &ns))
        throwSys("cannot read this process's network namespace", errno);
    const std::string dir = "/run/sluice",
                      path = dir + "/" + iface + ".net" + std::to_string(ns.st_ino) + ".lock";
    if (::mkdir(dir.c_str(), 0700) && errno != EEXIST)
        throwSys("cannot create " + dir, errno);
    UniqueFd fd;
    // A holder unlinks the file as it releases it: a lock won on a file no
    // longer at `path` (opened just before that unlink) is no lock, since
    // the next owner creates and locks a new file there. Try again.
    for (int attempt = 0;; attempt++) {
        fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (fd.get() < 0)
            throwSys("cannot open " + path, errno);
        if (::flock(fd.get(), LOCK_EX | LOCK_NB)) {
            if (errno != EWOULDBLOCK)
                throwSys("cannot lock " + path, errno);
            char buf[16] = {};
            ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
            std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
            pid = pid.substr(0, pid.find('\n'));
            throwRuntime("a `sluice run`" + (pid.empty() ? "" : " (pid " + pid + ")") + " manages " + iface +
                         ": stop it, or take " + iface + " out of its config and reload it");
        }
        struct stat held, named;
        if (::fstat(fd.get(), &held))
            throwSys("cannot stat " + path, errno);
        if (::stat(path.c_str(), &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino)
            break;
        if (attempt == 100)
            throwRuntime("cannot lock " + path + ": it keeps being replaced");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0)
        throwSys("cannot write " + path, errno);
    return InterfaceLock(std::move(fd), path);
}

}  // namespace sluice
