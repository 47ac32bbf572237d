// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A child process for integration tests: run with nsenter in a test network
// namespace (never `ip netns exec`, which would give it a private bpffs),
// output to a log file, SIGKILLed and reaped on destruction if still running,
// and killed by the kernel if the test process dies first.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "netns.h"

namespace slit {

class ChildProcess {
public:
    // Runs args[0] (looked up in PATH) inside `ns`, or here when ns is null.
    ChildProcess(const Netns* ns, const std::vector<std::string>& args, const std::string& log)
    {
        std::vector<std::string> argv;
        if (ns) {
            struct stat st;
            argv = {::stat("/usr/bin/nsenter", &st) == 0 ? "/usr/bin/nsenter" : "/bin/nsenter",
                    "--net=" + ns->path()};
        }
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        pid_ = fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int in = open("/dev/null", O_RDONLY);
            int out = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
            if (in < 0 || out < 0)
                _exit(126);
            dup2(in, 0);
            dup2(out, 1);
            dup2(out, 2);
            execvp(cargv[0], cargv.data());
            _exit(127);
        }
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
    }
    ~ChildProcess()
    {
        if (!status_) {
            kill(pid_, SIGKILL);
            int st;
            while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    void signal(int sig) const { kill(pid_, sig); }
    pid_t pid() const { return pid_; }

    // The exit status (-1: killed by a signal), or nullopt if it is still
    // running after `limit`.
    std::optional<int> wait(Millis limit = Millis(5000))
    {
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        while (!status_) {
            int st;
            pid_t r = waitpid(pid_, &st, WNOHANG);
            if (r == pid_)
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            else if (monoNs() > end)
                return std::nullopt;
            else
                std::this_thread::sleep_for(Millis(10));
        }
        return status_;
    }

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

}  // namespace slit
