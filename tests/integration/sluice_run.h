// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `sluice run` as a test drives it: its own temporary directory (config and
// log), started with nsenter in a test namespace, waited for by its log, and
// on destruction stopped, its interfaces detached and its pins removed even
// when the test failed half-way.
#pragma once

#include <stdlib.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "datapath.h"
#include "netns.h"
#include "paths.h"
#include "process.h"

namespace slit {

class SluiceRun {
public:
    // Interfaces whose pins and programs the destructor removes.
    SluiceRun(const Netns& ns, std::vector<std::string> ifaces) : ns_(ns), ifaces_(std::move(ifaces)) {
        char tmpl[] = "/tmp/sluice-run-XXXXXX";
        if (!mkdtemp(tmpl))
            throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        for (const auto& i : ifaces_)
            registerPinDir(pinDirOf(i));
    }
    ~SluiceRun() {
        proc_.reset();
        for (const auto& iface : ifaces_) {
            try {
                if (xdpAttached(ns_, iface) || ::access(pinDirOf(iface).c_str(), F_OK) == 0)
                    ns_.run([&] { sluice::Datapath::detach(iface); });
            } catch (const std::exception&) {
                runCmd({"rm", "-rf", pinDirOf(iface)});
            }
            unregisterPinDir(pinDirOf(iface));
        }
        runCmd({"rm", "-rf", dir_});
    }
    SluiceRun(const SluiceRun&) = delete;
    SluiceRun& operator=(const SluiceRun&) = delete;

    std::string configPath() const { return dir_ + "/sluice.toml"; }
    std::string logPath() const { return dir_ + "/run.log"; }
    std::string log() const { return readFile(logPath()); }
    const std::string& dir() const { return dir_; }

    void writeConfig(const std::string& text) const {
        std::FILE* f = std::fopen(configPath().c_str(), "w");
        if (!f || std::fputs(text.c_str(), f) < 0 || std::fclose(f))
            throw std::runtime_error("cannot write " + configPath());
    }

    // Environment for the daemons started from now on ("NAME=VALUE", given
    // to env(1)), e.g. the SSH_CONNECTION its lockout check reads.
    void setEnv(std::vector<std::string> vars) { env_ = std::move(vars); }

    // Starts it without waiting; the log says how it went.
    void launch(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args;
        if (!env_.empty()) {
            args = {"env"};
            args.insert(args.end(), env_.begin(), env_.end());
        }
        for (const std::string& a : {sluiceBinary(), std::string("run"), std::string("--config"), configPath()})
            args.push_back(a);
        args.insert(args.end(), extra.begin(), extra.end());
        proc_ = std::make_unique<ChildProcess>(&ns_, args, logPath());
    }

    // Starts it and waits (<= 10 s) until it runs with its config.
    ::testing::AssertionResult start(const std::vector<std::string>& extra = {}) {
        size_t from = log().size();
        launch(extra);
        if (waitLog("sluice: running with " + configPath(), from, Millis(10000)))
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "sluice run did not start; its log:\n" << log();
    }

    // Its exit status (-1: killed by a signal), or nullopt while it runs
    // after `limit`.
    std::optional<int> wait(Millis limit = Millis(5000)) {
        return proc_ ? proc_->wait(limit) : std::nullopt;
    }

    // Signals it and waits (<= 5 s) for its exit status.
    std::optional<int> stop(int sig = SIGTERM) {
        if (!proc_)
            return std::nullopt;
        proc_->signal(sig);
        return proc_->wait(Millis(5000));
    }

    bool waitLog(const std::string& needle, size_t from, Millis limit = Millis(5000)) const {
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        do {
            std::string text = log();
            if (text.size() > from && text.find(needle, from) != std::string::npos)
                return true;
            std::this_thread::sleep_for(Millis(20));
        } while (monoNs() < end);
        return false;
    }

    pid_t pid() const { return proc_ ? proc_->pid() : -1; }

    // GET /metrics from 127.0.0.1:PORT in its namespace (curl, <= 5 s);
    // "" when nothing answered.
    std::string scrape(uint16_t port) const {
        return runCmd({"nsenter", "--net=" + ns_.path(), "curl", "-sS", "--max-time", "5",
                       "http://127.0.0.1:" + std::to_string(port) + "/metrics"})
            .out;
    }

private:
    const Netns& ns_;
    std::vector<std::string> ifaces_;
    std::string dir_;
    std::vector<std::string> env_;
    std::unique_ptr<ChildProcess> proc_;
};

}  // namespace slit
