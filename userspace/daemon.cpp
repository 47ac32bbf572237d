// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "daemon.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <bpf/libbpf.h>
#include <httplib.h>

#include "config.h"
#include "error.h"
#include "fleet.h"
#include "interface_lock.h"
#include "lockout.h"
#include "unique_fd.h"
#include "metrics.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

// Editors and config tools touch the file several times per save (create,
// write, rename): reload once they have been quiet this long.
constexpr auto kSettle = std::chrono::milliseconds(200);
// How often the managed interfaces are looked at: is sluice's program still
// attached, are the presence filters of the source and probation tables due
// for a rebuild. Then the least time between two rebuilds of one
// interface's filters: a rebuild walks both tables while every source pays
// their lookups, so filters that churn are rebuilt at most this often.
constexpr auto kCheckEvery = std::chrono::seconds(10);
constexpr auto kFilterRebuildGap = std::chrono::seconds(60);

std::mutex statsMutex;
DaemonStats stats;
// The running responder, for live counters; set and cleared under statsMutex.
const Responder* liveResponder = nullptr;

void updateStats(const std::function<void(DaemonStats&)>& change)
{
    std::lock_guard lock(statsMutex);
    change(stats);
}

// "41.2% and 3.1% of 4194304 bits set": the per-source table's filter and
// the probation table's.
std::string filterFill(const KnownFilterState& f)
{
    char text[96];
    const double bits = f.bits ? double(f.bits) : 1.0;
    std::snprintf(text, sizeof text, "%.1f%% and %.1f%% of %llu bits set", 100.0 * double(f.set) / bits,
                  100.0 * double(f.probationSet) / bits, (unsigned long long)f.bits);
    return std::string(text) + (f.on ? "" : ", off");
}

// One write(2) per line, so lines never interleave with another thread's.
void logLine(const std::string& text)
{
    std::string line = "sluice: " + text + "\n";
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

std::string counted(size_t n, const char* one, const char* many)
{
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string joined(const std::vector<std::string>& names)
{
    if (names.empty())
        return "no interface";
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + n;
    return out;
}

// "3 policies on eth0", with the lists when there are any.
std::string describe(const Config& config)
{
    const Ruleset& r = config.rules;
    std::string out = counted(r.policies.size(), "policy", "policies");
    if (!r.allow.empty())
        out += ", " + counted(r.allow.size(), "allow entry", "allow entries");
    if (!r.deny.empty())
        out += ", " + counted(r.deny.size(), "deny entry", "deny entries");
    return out + " on " + joined(config.interfaces);
}

// loadConfig for the daemon: a config without interfaces is valid for
// `sluice apply`, but here it would mean "detach everything", which a
// half-written file must not be able to say. --interface replaces them.
// Without --force, a config that could lock out the operator (lockout.h) is
// refused like a bad one. The SSH session checked is the one the daemon was
// started from, if any: under systemd only the admin CIDRs are protected.
Config loadDaemonConfig(const DaemonOptions& options)
{
    const std::string& path = options.configPath;
    // Read once, so the text checked for emptiness is the text parsed.
    std::string text = readConfigFile(path);
    // Empty is how a save caught half-way looks (truncated, not written yet).
    // With --interface it would parse as "no rules" and drop every policy,
    // list and bucket, so it is refused like a config that does not load.
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
        throwUsage(path + ": the file is empty: `sluice run` needs a config (stop the daemon "
                          "to detach everything)");
    Config config = parseConfig(text, path);
    config.path = path;
    // As in the config: the daemon would detach the interface twice on stop
    // (the second fails, exit 1).
    for (size_t i = 0; i < options.interfaces.size(); i++)
        if (std::find(options.interfaces.begin(), options.interfaces.begin() + i,
                      options.interfaces[i]) != options.interfaces.begin() + i)
            throwUsage("--interface " + options.interfaces[i] + " is given twice");
    if (!options.interfaces.empty())
        config.interfaces = options.interfaces;
    if (config.interfaces.empty())
        throwUsage(path + ": [sluice] interfaces is empty: `sluice run` needs at least one "
                          "interface (stop the daemon to detach everything)");
    if (!options.force)
        refuseLockouts(config.rules, protectedSources(config),
                       "start `sluice run` with --force to install it anyway");
    return config;
}

std::string describe(const AttachInfo& info)
{
    std::string how = info.note;
    if (how.empty())
        how = info.dispatcher ? "through libxdp's multi-program dispatcher"
                              : "a single program, no libxdp dispatcher";
    return xdpModeName(info.mode) + " mode; " + how;
}

// SIGHUP, SIGTERM and SIGINT as readable events. They are blocked first, so
// one that arrives while the daemon starts waits for the loop instead of
// killing it half-attached. The mask is not restored: the process is about to
// exit then, and a late SIGHUP must not turn a clean stop into a signal death.
class SignalFd {
public:
    SignalFd()
    {
        sigset_t set;
        sigemptyset(&set);
        for (int sig : {SIGHUP, SIGTERM, SIGINT})
            sigaddset(&set, sig);
        if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr))
            throwSys("cannot block SIGHUP, SIGTERM and SIGINT", err);
        fd_ = UniqueFd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
        if (fd_.get() < 0)
            throwSys("signalfd", errno);
    }

    int fd() const { return fd_.get(); }

    // The next pending signal, if any.
    std::optional<int> next()
    {
        signalfd_siginfo info;
        for (;;) {
            ssize_t n = ::read(fd_.get(), &info, sizeof info);
            if (n == sizeof info)
                return static_cast<int>(info.ssi_signo);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return std::nullopt;
            throwSys("cannot read the signalfd", n < 0 ? errno : EIO);
        }
    }

private:
    UniqueFd fd_;
};

// Changes to the config file, seen through its directory: editors and
// config tools replace the file (write a new one, rename it over), which a
// watch on the file itself would lose after the first save. A config that is
// a symlink is followed by name only: a change of its target elsewhere needs
// a SIGHUP.
class ConfigWatch {
public:
    explicit ConfigWatch(const std::string& configPath) : path_(configPath)
    {
        std::filesystem::path path(configPath);
        name_ = path.filename().string();
        dir_ = path.has_parent_path() ? path.parent_path().string() : ".";
        UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
        // Without a watch the daemon still works, reloading on SIGHUP only.
        if (fd.get() < 0) {
            logLine("cannot watch " + dir_ + " for changes (inotify: " + errnoText(errno) +
                    "): reload with SIGHUP");
            return;
        }
        if (::inotify_add_watch(fd.get(), dir_.c_str(),
                                IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR) < 0) {
            logLine("cannot watch " + dir_ + " for changes (" + errnoText(errno) +
                    "): reload with SIGHUP");
            return;
        }
        fd_ = std::move(fd);
    }

    int fd() const { return fd_.get(); }

    // Drains the pending events; true if any may have changed the file.
    bool changed()
    {
        alignas(inotify_event) char buf[4096];
        bool hit = false, gone = false;
        for (;;) {
            ssize_t n = ::read(fd_.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            if (n <= 0)
                throwSys("cannot read the inotify events of " + dir_, n < 0 ? errno : EIO);
            for (ssize_t off = 0; off < n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
                off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
                // Lost events may have included ours.
                if (ev->mask & IN_Q_OVERFLOW)
                    hit = true;
                else if (ev->mask & IN_IGNORED)
                    gone = true;
                else if (ev->len && name_ == ev->name && !beingWritten(ev->mask))
                    hit = true;
            }
        }
        if (gone) {
            logLine("stopped watching " + dir_ + " (removed or unmounted): reload with SIGHUP");
            fd_.reset();
        }
        return hit;
    }

private:
    // IN_CREATE is needed for a link made to a finished file (no
    // IN_CLOSE_WRITE follows), but a regular file with one link was just
    // created by a writer that may still be writing: its IN_CLOSE_WRITE
    // comes when it is done, and reading before then could install half a
    // config.
    bool beingWritten(uint32_t mask) const
    {
        if (!(mask & IN_CREATE) || (mask & ~(IN_CREATE | IN_ISDIR)))
            return false;
        struct stat st;
        return ::lstat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
    }

    std::string path_, dir_, name_;
    UniqueFd fd_;
};

// /metrics on the configured address (DESIGN.md §1), served by cpp-httplib on
// threads of its own. It must be started after SignalFd has blocked SIGHUP,
// SIGTERM and SIGINT in the calling thread: its threads inherit that mask, so
// the signals still reach the signalfd and never a server thread. Each scrape
// reads the kernel through handles of its own (Datapath::open on the pins),
// never the daemon's, so it needs no lock beyond daemonStats(). A server that
// cannot bind is logged and left out: protection matters more than metrics.
class MetricsServer {
public:
    explicit MetricsServer(const std::string& address) : address_(address)
    {
        std::string host, port;
        if (!address.empty() && address.front() == '[') {
            size_t close = address.find(']');
            host = address.substr(1, close - 1);
            port = address.substr(close + 2);
        } else {
            size_t colon = address.rfind(':');
            host = address.substr(0, colon);
            port = address.substr(colon + 1);
        }
        server_.new_task_queue = [] { return new httplib::ThreadPool(2); };
        // cpp-httplib's default is SO_REUSEPORT alone, so a second daemon
        // (or anything else listening with it) shared the port and scrapes
        // alternated between them. SO_REUSEADDR still lets a restart bind
        // while the last scrapes' connections are in TIME_WAIT.
        server_.set_socket_options([](socket_t sock) {
            int yes = 1;
            ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        });
        server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(scrape(), kMetricsContentType);
        });
        server_.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_content("sluice: metrics are at /metrics\n", "text/plain");
        });
        if (!server_.bind_to_port(host.c_str(), std::stoi(port))) {
            logLine("cannot serve metrics on " + address + " (" + errnoText(errno) +
                    "): running without /metrics");
            return;
        }
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        logLine("serving metrics on http://" + address + "/metrics");
    }

    ~MetricsServer()
    {
        if (thread_.joinable()) {
            server_.stop();
            thread_.join();
        }
    }

    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    const std::string& address() const { return address_; }

private:
    std::string scrape()
    {
        DaemonStats d = daemonStats();
        MetricsSnapshot s;
        s.version = sluiceVersion();
        s.libbpf = libbpf_version_string();
        s.reloadsOk = d.reloadsOk;
        s.reloadsFailed = d.reloadsFailed;
        s.sourceFilterRebuilds = d.sourceFilterRebuilds;
        s.reattaches = d.reattaches;
        if (d.responderRunning)
            s.responder = d.responder;
        s.bpfStatsEnabled = bpfStatsEnabled();
        if (FleetStats f = fleetStats(); f.enabled)
            s.fleet = std::move(f);
        for (const auto& iface : d.interfaces)
            collectInterface(iface, s);
        std::string errors;
        for (const auto& e : s.errors)
            errors += (errors.empty() ? "" : "; ") + e;
        std::lock_guard lock(errorMutex_);
        if (errors != lastErrors_ && !errors.empty())
            logLine("metrics: " + errors);
        lastErrors_ = errors;
        return renderMetrics(s);
    }

    std::string address_;
    httplib::Server server_;
    std::thread thread_;
    std::mutex errorMutex_;
    std::string lastErrors_;  // logged once until they change
};

// An interface a start or reload attached (not adopted), and what a
// failure then does with its pins.
struct Fresh {
    std::string iface;
    Datapath::Pins pins;  // Keep: it was attached over pins it found
};

class Daemon {
public:
    Daemon(DaemonOptions options, Config config)
        : options_(std::move(options)), config_(std::move(config)) {}
    ~Daemon() { stopResponder(); }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Brings sluice up on every configured interface with the configured
    // rules. On failure, the interfaces it attached are detached again
    // (adopted ones are left as they were found) and the error is rethrown.
    void start()
    {
        startResponder();
        std::vector<Fresh> fresh;
        try {
            for (const auto& iface : config_.interfaces)
                if (!managed_.contains(iface))
                    bringUp(iface, config_.maxSources, fresh);
            for (const auto& iface : config_.interfaces)
                managed_.at(iface).install(config_.rules);
        } catch (...) {
            takeDown(fresh, "start failed");
            throw;
        }
        publish();
        logLine("running with " + config_.path + ": " + describe(config_));
        syncFleet();
    }

    // Applies the config file as it is now. A config that does not load, or
    // an interface that cannot be brought up, leaves everything as it was.
    void reload()
    {
        Config next;
        try {
            next = loadDaemonConfig(options_);
        } catch (const std::exception& e) {
            failed(e.what());
            return;
        }
        std::vector<Fresh> fresh;
        std::vector<std::string> added;
        std::vector<std::pair<std::string, Ruleset>> undo;
        try {
            // An interface of the running config is never "added", even
            // when a failed re-attach at a check left it unmanaged: taking
            // it down with the failed reload would drop its pins, buckets
            // and all.
            for (const auto& iface : next.interfaces)
                if (running(iface) && ::if_nametoindex(iface.c_str()) &&
                    !(managed_.contains(iface) && managed_.at(iface).programAttached()))
                    reattach(iface);
            for (const auto& iface : next.interfaces)
                if (!managed_.contains(iface)) {
                    bringUp(iface, next.maxSources, fresh);
                    added.push_back(iface);
                }
            for (const auto& iface : next.interfaces) {
                Datapath& dp = managed_.at(iface);
                Ruleset before = dp.installed();
                dp.install(next.rules);
                undo.emplace_back(iface, std::move(before));
            }
        } catch (const std::exception& e) {
            // Install is atomic per interface, not across them: put back what
            // the interfaces already switched had, buckets and all.
            for (const auto& [iface, rules] : undo) {
                Datapath& dp = managed_.at(iface);
                try {
                    dp.undoInstall();
                } catch (const std::exception& u) {
                    try {
                        dp.install(rules);
                        logLine(std::string(u.what()) + ": installed the previous rules again; buckets of " +
                                "policies whose limits the failed reload changed start full");
                    } catch (const std::exception& v) {
                        logLine("cannot restore the previous rules on " + iface + ": " + v.what());
                    }
                }
            }
            takeDown(fresh, "reload failed");
            for (const auto& iface : added) {
                if (responder_)
                    responder_->removeInterface(iface);
                managed_.erase(iface);
                locks_.erase(iface);
            }
            failed(e.what());
            return;
        }
        for (const auto& iface : config_.interfaces)
            if (std::find(next.interfaces.begin(), next.interfaces.end(), iface) ==
                next.interfaces.end())
                detach(iface, "no longer in " + next.path);
        if (next.metrics != config_.metrics)
            logLine("metrics is now " + next.metrics + ": /metrics stays on " + config_.metrics +
                    " until the daemon restarts");
        if (next.maxSources != config_.maxSources)
            logLine("max_sources is now " + std::to_string(next.maxSources) +
                    ": interfaces already attached keep their table size until detached");
        config_ = std::move(next);
        updateStats([](DaemonStats& s) { s.reloadsOk++; });
        publish();
        logLine("reloaded " + config_.path + ": " + describe(config_));
        syncFleet();
    }

    // On SIGTERM/SIGINT. Returns the exit code.
    int stop(int sig)
    {
        std::string why = std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM");
        fleet_.reset();
        if (options_.keepOnExit) {
            logLine(why + ": leaving sluice attached to " + joined(config_.interfaces) +
                    " (--keep-on-exit): protection continues, the next start adopts it");
            managed_.clear();
            return 0;
        }
        logLine(why);
        bool ok = true;
        for (const auto& iface : config_.interfaces)
            ok = detach(iface, "stopping") && ok;
        config_.interfaces.clear();
        publish();
        return ok ? 0 : 1;
    }

    // When the loop itself fails: leave protection in place for the restart.
    void abandon(const std::string& error)
    {
        fleet_.reset();
        logLine(error + "; leaving sluice attached to " + joined(config_.interfaces) +
                " (a restart adopts it)");
        managed_.clear();
    }

    // A program taken off a managed interface behind the daemon's back
    // (`ip link set dev IFACE xdp off`, the interface deleted and made
    // again) leaves it open: look at every check, not only at reloads, and
    // attach it again from its pins with the rules in force. A failure
    // (another XDP program took the interface) is logged once per message
    // and tried again at the next check.
    void tendAttachments()
    {
        for (const auto& iface : config_.interfaces) {
            try {
                auto it = managed_.find(iface);
                if (!::if_nametoindex(iface.c_str()) || (it != managed_.end() && it->second.programAttached()))
                    continue;
                reattach(iface);
                managed_.at(iface).install(config_.rules);
                attachFailed_.erase(iface);
            } catch (const std::exception& e) {
                std::string& last = attachFailed_[iface];
                if (last != e.what())
                    logLine("cannot attach sluice to " + iface + " again (trying every " +
                            std::to_string(kCheckEvery.count()) + " s): " + e.what());
                last = e.what();
            }
        }
    }

    // Bits of the presence filters are not cleared as sources leave their
    // table, so where a table churns its filter fills up and spoofed
    // sources pay the lookup again: rebuild them when they are due
    // (KnownFilterState::wantsRebuild). A failure only costs speed: the
    // filters are off until the next rebuild, and every source is looked up.
    void tendSourceFilters()
    {
        const auto now = Clock::now();
        for (auto& [iface, dp] : managed_) {
            try {
                const auto before = dp.knownFilter();
                if (!before || !before->wantsRebuild())
                    continue;
                auto last = filterRebuilt_.find(iface);
                if (last != filterRebuilt_.end() && now - last->second < kFilterRebuildGap)
                    continue;
                filterRebuilt_[iface] = now;
                dp.refreshKnownFilter();
                const auto after = dp.knownFilter();
                updateStats([](DaemonStats& s) { s.sourceFilterRebuilds++; });
                logLine("source filters of " + iface + " rebuilt from their tables: " + filterFill(*before) +
                        " -> " + (after ? filterFill(*after) : std::string("gone")));
            } catch (const std::exception& e) {
                logLine("source filters of " + iface + ": " + e.what());
            }
        }
    }

private:
    // Adopts a live sluice on IFACE as it is (left by `sluice attach` or a
    // daemon stopped with --keep-on-exit): no bucket is reset, and install
    // later keeps the state of every unchanged policy. Otherwise attaches,
    // which also reuses pins left without a program (so their state too).
    void bringUp(const std::string& iface, uint32_t maxSources, std::vector<Fresh>& fresh)
    {
        InterfaceLock lock = lockInterface(iface);
        if (auto live = openLive(iface)) {
            std::string how = describe(live->attachInfo());
            if (options_.mode != XdpMode::Auto && options_.mode != live->attachInfo().mode)
                how += "; kept as it is, detach it to change the mode";
            managed_.emplace(iface, std::move(*live));
            logLine("adopted " + iface + " (" + how + "): its buckets are kept");
        } else {
            // Pins left without a program keep their table at its size, as
            // an adopted interface does: a reload that changed max_sources
            // did not resize it, and an attach asking for another size
            // could not reuse them.
            const auto pinned = Datapath::pinnedMaxSources(iface);
            Datapath dp = Datapath::attach(AttachOptions{iface, options_.mode, pinned.value_or(maxSources)});
            std::string how = describe(dp.attachInfo());
            if (pinned && *pinned != maxSources)
                how += "; its pinned table of " + std::to_string(*pinned) + " sources is kept: max_sources " +
                       std::to_string(maxSources) + " applies once it is detached";
            fresh.push_back({iface, dp.attachInfo().overPins ? Datapath::Pins::Keep : Datapath::Pins::Remove});
            managed_.emplace(iface, std::move(dp));
            logLine("attached " + iface + " (" + how + ")");
        }
        locks_.insert_or_assign(iface, std::move(lock));
        steer(iface);
    }

    // The responder runs whenever the daemon does, so that a config that
    // gains a respond policy needs no restart. Without it respond policies
    // fall back to reject (the data path sees no socket in its map), which
    // is logged here and shown by status and /metrics.
    void startResponder()
    {
        try {
            responder_ = std::make_unique<Responder>();
            std::lock_guard lock(statsMutex);
            liveResponder = responder_.get();
        } catch (const std::exception& e) {
            logLine(std::string("responder not running (action respond falls back to reject): ") + e.what());
        }
    }

    void stopResponder()
    {
        {
            std::lock_guard lock(statsMutex);
            liveResponder = nullptr;
        }
        responder_.reset();
    }

    void steer(const std::string& iface)
    {
        if (!responder_)
            return;
        try {
            responder_->addInterface(iface);
            logLine("responder on 127.0.0.1:" + std::to_string(responder_->port4()) + " and [::1]:" +
                    std::to_string(responder_->port6()) + " answers " + iface + "'s respond policies");
        } catch (const std::exception& e) {
            logLine("responder cannot serve " + iface + " (action respond falls back to reject there): " +
                    e.what());
        }
    }

    // An interface of the config in force (not one a reload adds).
    bool running(const std::string& iface) const
    {
        return std::find(config_.interfaces.begin(), config_.interfaces.end(), iface) != config_.interfaces.end();
    }

    // The program was taken off the interface behind the daemon's back
    // (`ip link set dev IFACE xdp off`), its pins left: attach it again from
    // them, buckets kept. Not undone if the reload fails later: protected
    // by the old rules is better than not protected. An interface that is
    // gone for now is left alone: its maps still take the new rules. If
    // the attach fails the interface is left unmanaged, its pins kept, for
    // the next check or reload to try again.
    void reattach(const std::string& iface)
    {
        logLine("sluice's program is no longer attached to " + iface + ": attaching it again, buckets kept");
        if (responder_)
            responder_->removeInterface(iface);
        managed_.erase(iface);
        locks_.erase(iface);
        std::vector<Fresh> attached;
        bringUp(iface, config_.maxSources, attached);
        updateStats([](DaemonStats& s) { s.reattaches++; });
    }

    static std::optional<Datapath> openLive(const std::string& iface)
    {
        // Unknown here: attach says so properly.
        if (!::if_nametoindex(iface.c_str()))
            return std::nullopt;
        try {
            Datapath dp = Datapath::open(iface);
            if (dp.attachInfo().note.find("not attached") != std::string::npos)
                return std::nullopt;
            return dp;
        } catch (const Error& e) {
            // Nothing pinned: a fresh attach. Broken pins are worth an error.
            if (e.kind() == ErrorKind::Usage)
                return std::nullopt;
            throw;
        }
    }

    // Interfaces a failed start or reload attached are detached again;
    // pins they were attached over stay as they were found.
    void takeDown(const std::vector<Fresh>& fresh, const std::string& why)
    {
        for (const auto& f : fresh)
            detach(f.iface, why, f.pins);
    }

    bool detach(const std::string& iface, const std::string& why,
                Datapath::Pins pins = Datapath::Pins::Remove)
    {
        // Our handles first: the detach then leaves nothing of it open here.
        if (responder_)
            responder_->removeInterface(iface);
        managed_.erase(iface);
        bool ok = true;
        try {
            DetachResult r = Datapath::detach(iface, pins);
            std::string what = r.note.empty() ? "" : ": " + r.note;
            if (pins == Datapath::Pins::Keep && r.note.empty())
                what = ": the pins it was attached over are kept, buckets and all";
            logLine("detached " + iface + " (" + why + ")" + what);
        } catch (const std::exception& e) {
            logLine("cannot detach " + iface + " (" + why + "): " + e.what());
            ok = false;
        }
        // Only now: another daemon must not adopt it half detached.
        locks_.erase(iface);
        return ok;
    }

    void failed(const std::string& error)
    {
        updateStats([](DaemonStats& s) { s.reloadsFailed++; });
        logLine("reload failed, keeping the running config: " + error);
    }

    // The fleet sync follows the config: started, restarted when [fleet]
    // changed, stopped when it is gone; told which interfaces to read.
    void syncFleet()
    {
        if (!config_.fleet) {
            if (fleet_)
                logLine("fleet: no [fleet] section any more: sync stopped, fleet policies use local limits");
            fleet_.reset();
            return;
        }
        if (fleet_ && fleet_->config() == *config_.fleet) {
            fleet_->setInterfaces(config_.interfaces);
            return;
        }
        fleet_.reset();
        fleet_ = std::make_unique<FleetSync>(*config_.fleet, config_.interfaces);
    }

    void publish()
    {
        updateStats([&](DaemonStats& s) { s.interfaces = config_.interfaces; });
    }

    DaemonOptions options_;
    Config config_;
    std::map<std::string, Datapath> managed_;
    std::map<std::string, InterfaceLock> locks_;  // lockInterface(), per managed interface
    std::unique_ptr<FleetSync> fleet_;  // while the config has [fleet]
    std::unique_ptr<Responder> responder_;
    std::map<std::string, Clock::time_point> filterRebuilt_;  // tendSourceFilters, per interface
    std::map<std::string, std::string> attachFailed_;         // tendAttachments: the last error logged
};

// Until SIGTERM/SIGINT: reloads on SIGHUP at once, and on a file change once
// its writer has settled. Returns the exit code.
int serve(Daemon& daemon, SignalFd& signals, ConfigWatch& watch)
{
    constexpr auto kNever = Clock::time_point::max();
    auto reloadAt = kNever;
    auto tendAt = Clock::now() + kCheckEvery;
    for (;;) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(std::min(reloadAt, tendAt) - Clock::now());
        const int timeout = static_cast<int>(std::max<int64_t>(left.count(), 0));
        pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {watch.fd(), POLLIN, 0}};
        if (::poll(fds, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            throwSys("poll", errno);
        }
        // File changes first: a SIGHUP's reload below reads the file with
        // every change queued so far, and must not leave them to reload the
        // same file again a settle later (a write followed by SIGHUP, woken
        // by both at once, reloaded twice).
        if ((fds[1].revents & POLLIN) && watch.changed())
            reloadAt = Clock::now() + kSettle;
        if (fds[0].revents & POLLIN) {
            while (auto sig = signals.next()) {
                if (*sig != SIGHUP)
                    return daemon.stop(*sig);
                reloadAt = kNever;  // this reload reads the file as it is now
                daemon.reload();
            }
        }
        if (reloadAt != kNever && Clock::now() >= reloadAt) {
            reloadAt = kNever;
            daemon.reload();
        }
        if (Clock::now() >= tendAt) {
            daemon.tendAttachments();
            daemon.tendSourceFilters();
            tendAt = Clock::now() + kCheckEvery;
        }
    }
}

}  // namespace

DaemonStats daemonStats()
{
    std::lock_guard lock(statsMutex);
    DaemonStats out = stats;
    out.responderRunning = liveResponder != nullptr;
    if (liveResponder)
        out.responder = liveResponder->stats();
    return out;
}

int runDaemon(const DaemonOptions& options)
{
    updateStats([](DaemonStats& s) { s = DaemonStats{}; });
    std::optional<SignalFd> signals;
    try {
        signals.emplace();
    } catch (const std::exception& e) {
        logLine(e.what());
        return 1;
    }

    Config config;
    try {
        config = loadDaemonConfig(options);
    } catch (const std::exception& e) {
        // Whatever made it unreadable, it is the config's fault: exit 2.
        logLine(e.what());
        return 2;
    }

    std::optional<Daemon> daemon;
    // After `signals`: its threads inherit the blocked signals.
    MetricsServer metrics(config.metrics);
    try {
        ConfigWatch watch(options.configPath);
        daemon.emplace(options, std::move(config));
        daemon->start();
        try {
            return serve(*daemon, *signals, watch);
        } catch (const std::exception& e) {
            daemon->abandon(e.what());
            return 1;
        }
    } catch (const Error& e) {
        logLine(std::string("cannot start: ") + e.what());
        return e.exitCode();
    } catch (const std::exception& e) {
        logLine(std::string("cannot start: ") + e.what());
        return 1;
    }
}

}  // namespace sluice
