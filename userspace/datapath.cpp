// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "datapath.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/membarrier.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "config.h"
#include "error.h"
#include "map_batch.h"
#include "unique_fd.h"
#include "sluice.skel.h"

extern "C" {
#include "lib/admit.h"
#include "lib/known.h"
#include "lib/gcra.h"
}

namespace sluice {
namespace {

constexpr const char* kProgName = "sluice_xdp";
// The name libxdp's multi-program dispatcher loads under.
constexpr const char* kDispatcherName = "xdp_dispatcher";
constexpr const char* kProgPin = "prog";
constexpr uint32_t kBpffsMagic = 0xcafe4a11;
constexpr size_t kVerifierTailLines = 20;

const char* const kMapNames[] = {
    "sluice_config", "sluice_ports", "sluice_policies", "sluice_sources",
    "sluice_lists4", "sluice_lists6", "sluice_frags",   "sluice_stats",
    "sluice_bans",   "sluice_redirect", "sluice_respond_flows", "sluice_responder",
    "sluice_fleet_units", "sluice_fleet_over", "sluice_probation",
    "sluice_admit_fp",    "sluice_admit_mem", "sluice_admit_fold",
};

// Names become directories under SLUICE_PIN_ROOT that detach empties: "..",
// "/" or "" must never reach a path.
std::string pinDir(const std::string& iface)
{
    if (!validInterfaceName(iface))
        throwUsage("invalid interface name '" + iface + "' (see `ip link`)");
    return std::string(SLUICE_PIN_ROOT) + "/" + iface;
}

// ---- RAII holders -------------------------------------------------------

class Mapping {
public:
    Mapping() = default;
    Mapping(int fd, size_t len) : len_(len)
    {
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            throwSys("mmap of a sluice map", errno);
        addr_ = p;
    }
    Mapping(Mapping&& o) noexcept
        : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
    Mapping& operator=(Mapping&& o) noexcept
    {
        if (this != &o) {
            reset();
            addr_ = std::exchange(o.addr_, nullptr);
            len_ = std::exchange(o.len_, 0);
        }
        return *this;
    }
    ~Mapping() { reset(); }
    template <typename T> T* as() const { return static_cast<T*>(addr_); }

private:
    void reset()
    {
        if (addr_)
            ::munmap(addr_, len_);
        addr_ = nullptr;
    }
    void* addr_ = nullptr;
    size_t len_ = 0;
};

struct SkelDeleter {
    void operator()(sluice_bpf* s) const { sluice_bpf__destroy(s); }
};
struct XdpProgramDeleter {
    void operator()(xdp_program* p) const { xdp_program__close(p); }
};
struct MultiprogDeleter {
    void operator()(xdp_multiprog* m) const { xdp_multiprog__close(m); }
};
using SkelPtr = std::unique_ptr<sluice_bpf, SkelDeleter>;
using XdpProgramPtr = std::unique_ptr<xdp_program, XdpProgramDeleter>;
using MultiprogPtr = std::unique_ptr<xdp_multiprog, MultiprogDeleter>;

// ---- libbpf / libxdp log capture ---------------------------------------

// libbpf and libxdp print through global callbacks. While a LogCapture is
// alive their lines are kept (for the verifier log in an error message);
// otherwise they are shown only with SLUICE_DEBUG set.
std::mutex logMutex;
std::vector<std::string>* logSink = nullptr;

int logPrint(bool debug, const char* format, va_list args)
{
    char buf[1024];
    vsnprintf(buf, sizeof(buf), format, args);
    std::lock_guard lock(logMutex);
    if (logSink && !debug) {
        std::string line(buf);
        while (!line.empty() && line.back() == '\n')
            line.pop_back();
        logSink->push_back(line);
    } else if (getenv("SLUICE_DEBUG")) {
        fputs(buf, stderr);
    }
    return 0;
}

// Debug lines are only for SLUICE_DEBUG: warnings carry the verifier log.
int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args)
{
    return logPrint(level == LIBBPF_DEBUG, format, args);
}

int libxdpPrint(enum libxdp_print_level level, const char* format, va_list args)
{
    return logPrint(level == LIBXDP_DEBUG, format, args);
}

class LogCapture {
public:
    LogCapture()
    {
        static std::once_flag once;
        std::call_once(once, [] {
            libbpf_set_print(libbpfPrint);
            libxdp_set_print(libxdpPrint);
        });
        std::lock_guard lock(logMutex);
        logSink = &lines_;
    }
    ~LogCapture()
    {
        std::lock_guard lock(logMutex);
        logSink = nullptr;
    }
    std::string tail(size_t n) const
    {
        std::string out;
        size_t start = lines_.size() > n ? lines_.size() - n : 0;
        for (size_t i = start; i < lines_.size(); i++)
            out += "\n  " + lines_[i];
        return out;
    }
    bool contains(const std::string& needle) const
    {
        return std::any_of(lines_.begin(), lines_.end(),
                           [&](const std::string& l) { return l.find(needle) != std::string::npos; });
    }

private:
    std::vector<std::string> lines_;
};

// ---- small helpers ------------------------------------------------------

int ifindexOf(const std::string& iface)
{
    if (!validInterfaceName(iface))
        throwUsage("invalid interface name '" + iface + "' (see `ip link`)");
    unsigned idx = if_nametoindex(iface.c_str());
    if (!idx)
        throwUsage("unknown interface '" + iface + "' (see `ip link`)");
    return static_cast<int>(idx);
}

void mkdirPrivate(const std::string& path)
{
    if (::mkdir(path.c_str(), 0700) && errno != EEXIST)
        throwSys("cannot create " + path, errno);
}

bool exists(const std::string& path)
{
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

// Array maps store each value at an 8-byte aligned stride.
constexpr size_t stride(size_t valueSize)
{
    return (valueSize + 7) & ~size_t{7};
}

size_t pageAligned(size_t len)
{
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (len + page - 1) / page * page;
}

XdpMode modeFromLibxdp(enum xdp_attach_mode m)
{
    return m == XDP_MODE_SKB ? XdpMode::Generic : XdpMode::Native;
}

// The sluice program attached to ifindex, if any, and how.
struct AttachedProgram {
    bool found = false;
    AttachInfo info;
};

// What the kernel says is attached to ifindex, without libxdp: libxdp
// 1.3.1's xdp_multiprog__close() leaks the fd of a program attached without
// its dispatcher (the only way here, see README). In `sluice run`, which
// queries on every adopt and /metrics scrape, each leaked fd kept the
// program and all its maps alive after a detach, and its fds grew with
// every scrape.
struct KernelXdp {
    uint8_t attachMode = XDP_ATTACHED_NONE;  // XDP_ATTACHED_*
    std::string name;                        // of the single program, if one
    UniqueFd fd;                             // of the single program, if one
    // One program on its own, not libxdp's dispatcher: handled without libxdp.
    bool single() const
    {
        return attachMode != XDP_ATTACHED_NONE && attachMode != XDP_ATTACHED_MULTI &&
               name != kDispatcherName;
    }
};

KernelXdp kernelXdp(int ifindex)
{
    KernelXdp out;
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (int err = bpf_xdp_query(ifindex, 0, &q))
        throwSys("cannot query the XDP program of interface index " + std::to_string(ifindex), err);
    out.attachMode = q.attach_mode;
    if (!q.prog_id)
        return out;
    // The program may be detached between the query and this: then it is gone.
    out.fd = UniqueFd(bpf_prog_get_fd_by_id(q.prog_id));
    if (out.fd.get() < 0) {
        out.attachMode = XDP_ATTACHED_NONE;
        return out;
    }
    bpf_prog_info info = {};
    uint32_t len = sizeof info;
    if (int err = bpf_obj_get_info_by_fd(out.fd.get(), &info, &len))
        throwSys("cannot read the XDP program of interface index " + std::to_string(ifindex), err);
    out.name = info.name;
    return out;
}

AttachedProgram queryAttached(int ifindex)
{
    AttachedProgram out;
    KernelXdp k = kernelXdp(ifindex);
    if (k.attachMode == XDP_ATTACHED_NONE)
        return out;
    if (k.single()) {
        out.info.mode = k.attachMode == XDP_ATTACHED_SKB ? XdpMode::Generic : XdpMode::Native;
        out.found = k.name == kProgName;
        return out;
    }
    MultiprogPtr mp(xdp_multiprog__get_from_ifindex(ifindex));
    if (libxdp_get_error(mp.get())) {
        (void)mp.release();
        return out;
    }
    out.info.dispatcher = !xdp_multiprog__is_legacy(mp.get());
    out.info.mode = modeFromLibxdp(xdp_multiprog__attach_mode(mp.get()));
    if (!out.info.dispatcher) {
        xdp_program* main = xdp_multiprog__main_prog(mp.get());
        out.found = main && std::string(xdp_program__name(main)) == kProgName;
        return out;
    }
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp.get()); p;
         p = xdp_multiprog__next_prog(p, mp.get()))
        if (std::string(xdp_program__name(p)) == kProgName)
            out.found = true;
    return out;
}

void removePins(const std::string& dir)
{
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name != "." && name != "..")
                ::unlink((dir + "/" + name).c_str());
        }
        ::closedir(d);
    }
    if (::rmdir(dir.c_str()) && errno != ENOENT)
        throwSys("cannot remove " + dir, errno);
    ::rmdir(SLUICE_PIN_ROOT);  // only succeeds when no interface is left
}

// Removes the pins an attach created if it fails before the end.
class PinCleanup {
public:
    explicit PinCleanup(std::string dir) : dir_(std::move(dir)), armed_(!exists(dir_ + "/sluice_config")) {}
    ~PinCleanup()
    {
        if (armed_) {
            try {
                removePins(dir_);
            } catch (const Error&) {
                // The attach's own error is the one to report.
            }
        }
    }
    void release() { armed_ = false; }
    // False when the pins were there before (nothing of them is removed).
    bool armed() const { return armed_; }

private:
    std::string dir_;
    bool armed_;
};

// Held while a ruleset is written, so two writers (CLI and daemon) never
// interleave their generations, and while the source table's filter is
// rebuilt (rebuildKnownFilter). bpffs holds no regular files, so the pin
// directory itself is the lock.
class InstallLock {
public:
    explicit InstallLock(const std::string& dir)
    {
        if (dir.empty())
            return;
        fd_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd_.get() < 0)
            throwSys("cannot open " + dir, errno);
        if (::flock(fd_.get(), LOCK_EX))
            throwSys("cannot lock " + dir, errno);
    }

private:
    UniqueFd fd_;
};

// Held across attach and detach, so that two of them never interleave: a CLI
// attach racing `sluice run`'s would otherwise load against the other's
// half-made pins, and the loser's PinCleanup could remove the winner's. The
// lock is the pin root directory (bpffs holds no regular files). removePins
// removes that directory once it is empty, so a lock taken on a directory
// removed meanwhile is taken again on the new one.
class PinRootLock {
public:
    // `create`: make the root when missing (attach); otherwise a missing
    // root means nothing is pinned and there is nothing to lock (detach).
    explicit PinRootLock(bool create)
    {
        for (;;) {
            if (create)
                mkdirPrivate(SLUICE_PIN_ROOT);
            fd_ = UniqueFd(::open(SLUICE_PIN_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (fd_.get() < 0) {
                if (errno == ENOENT && !create)
                    return;
                throwSys(std::string("cannot open ") + SLUICE_PIN_ROOT, errno);
            }
            if (::flock(fd_.get(), LOCK_EX))
                throwSys(std::string("cannot lock ") + SLUICE_PIN_ROOT, errno);
            struct stat held, now;
            if (::fstat(fd_.get(), &held) == 0 && ::stat(SLUICE_PIN_ROOT, &now) == 0 &&
                held.st_dev == now.st_dev && held.st_ino == now.st_ino)
                return;
        }
    }

private:
    UniqueFd fd_;
};

// Waits until no packet can still be judged by the generation that was
// active before the last flip. XDP programs run inside RCU read-side
// sections, and MEMBARRIER_CMD_GLOBAL performs synchronize_rcu().
void waitForReaders()
{
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
        return;
    // nohz_full kernels refuse it; a packet's run is microseconds.
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
}

}  // namespace

// ---- Impl ---------------------------------------------------------------

struct Datapath::Impl {
    std::string iface;
    std::string pins;  // "" when not pinned
    AttachInfo info;
    SkelPtr skel;          // present when this process loaded the program
    XdpProgramPtr xdpProg;  // present when this process attached it
    UniqueFd progPin;            // program fd when opened from pins
    // map fds when opened from pins, and the unpinned maps of its program
    // (adoptUnpinnedMaps)
    std::map<std::string, UniqueFd> pinnedMaps;
    Mapping config, ports, policies;
    int ncpus = 0;
    // sluice_config.cache_epoch right after this Datapath's last install:
    // undoInstall() flips back only while it is unchanged.
    std::optional<uint32_t> undoEpoch;

    int mapFd(const char* name) const
    {
        if (skel) {
            bpf_map* m = bpf_object__find_map_by_name(skel->obj, name);
            return m ? bpf_map__fd(m) : -1;
        }
        auto it = pinnedMaps.find(name);
        return it == pinnedMaps.end() ? -1 : it->second.get();
    }

    void mapArrays()
    {
        config = Mapping(mapFd("sluice_config"), pageAligned(stride(sizeof(sluice_config))));
        ports = Mapping(mapFd("sluice_ports"), pageAligned(stride(sizeof(__u32)) * SLUICE_PORT_ENTRIES));
        policies = Mapping(mapFd("sluice_policies"),
                           pageAligned(stride(sizeof(sluice_policy)) * SLUICE_GENERATIONS *
                                       SLUICE_MAX_POLICIES));
        ncpus = libbpf_num_possible_cpus();
        if (ncpus <= 0)
            throwSys("cannot count possible CPUs", ncpus);
    }

    sluice_config* cfg() const { return config.as<sluice_config>(); }
    uint32_t activeGen() const { return __atomic_load_n(&cfg()->active_gen, __ATOMIC_ACQUIRE) & 1; }
    // After source state was removed or a generation flipped: every entry
    // of the data path's over-limit cache (map sluice_over) goes stale.
    void bumpCacheEpoch() const { __atomic_fetch_add(&cfg()->cache_epoch, 1, __ATOMIC_SEQ_CST); }

    uint32_t& portSlot(uint32_t key) const
    {
        return *reinterpret_cast<uint32_t*>(ports.as<char>() + key * stride(sizeof(__u32)));
    }
    sluice_policy& policy(uint32_t gen, uint32_t slot) const
    {
        size_t idx = gen * SLUICE_MAX_POLICIES + slot;
        return *reinterpret_cast<sluice_policy*>(policies.as<char>() + idx * stride(sizeof(sluice_policy)));
    }
};

namespace {

// The presence filters' words (map sluice_seen), mapped: the per-source
// table's half, then the probation table's.
struct KnownFilterWords {
    Mapping mapping;
    uint64_t* words = nullptr;
    uint32_t half = 0;  // words per half: sluice_known_words(), a power of two

    uint32_t mask() const { return half * SLUICE_KNOWN_WORD_BITS - 1; }
    uint64_t setBits(uint32_t from) const
    {
        uint64_t n = 0;
        for (uint32_t i = from; i < from + half; i++)
            n += std::popcount(std::atomic_ref<uint64_t>(words[i]).load(std::memory_order_relaxed));
        return n;
    }
};

KnownFilterWords mapKnownFilter(int filterFd)
{
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(filterFd, &info, &len))
        throwSys("cannot read the size of the source filters", err);
    if (info.max_entries < 2 || !std::has_single_bit(info.max_entries))
        throwRuntime("the source filters have " + std::to_string(info.max_entries) +
                     " words, not two halves of a power of two: loaded by another sluice version");
    KnownFilterWords f{Mapping(filterFd, pageAligned(size_t(info.max_entries) * sizeof(uint64_t))), nullptr,
                       info.max_entries / 2};
    f.words = f.mapping.as<uint64_t>();
    return f;
}

void setKnownFilterOn(int onFd, bool on)
{
    const uint32_t zero = 0, value = on ? 1 : 0;
    if (int err = bpf_map_update_elem(onFd, &zero, &value, BPF_ANY))
        throwSys(std::string("cannot turn the source filters ") + (on ? "on" : "off"), err);
}

bool hasKnownFilter(const Datapath::Impl& impl)
{
    return impl.mapFd("sluice_seen") >= 0 && impl.mapFd("sluice_known_on") >= 0;
}

// Datapath::refreshKnownFilter, also for a Datapath still being made.
// `fresh`: the filter was just created, empty and off, so nothing needs
// clearing (a load). `locked`: the caller holds the InstallLock.
void rebuildKnownFilter(const Datapath::Impl& impl, bool fresh, bool locked = false)
{
    if (!hasKnownFilter(impl))
        throwRuntime("this sluice program has no source filters (loaded by another sluice version)");
    const int filterFd = impl.mapFd("sluice_seen");
    const int onFd = impl.mapFd("sluice_known_on");
    // Two rebuilds at once (`sluice reset --all` while `sluice run`
    // rebuilds) could turn the filter on while the other has just cleared
    // it: the table's sources would be taken for new ones. A fresh filter
    // is its loader's alone.
    std::optional<InstallLock> turn;
    if (!fresh && !locked)
        turn.emplace(impl.pins);
    KnownFilterWords filter = mapKnownFilter(filterFd);
    uint64_t* words = filter.words;
    const uint32_t mask = filter.mask();
    if (!fresh) {
        setKnownFilterOn(onFd, false);
        // No packet still skips a lookup on a bit about to be cleared.
        waitForReaders();
        for (uint32_t i = 0; i < 2 * filter.half; i++)
            std::atomic_ref<uint64_t>(words[i]).store(0);
        // An insert that set its bit before it was cleared has inserted its
        // source by now: the walks below find it. Later ones set their bits
        // themselves.
        waitForReaders();
    }
    // The program sets bits too while this runs (it may be attached):
    // atomic ORs on both sides lose none.
    auto mark = [&](uint32_t w, uint32_t h) { std::atomic_ref<uint64_t>(words[w]).fetch_or(known_bit(h)); };
    auto fill = [&](const char* map, const char* what, uint32_t (*word)(uint32_t, uint32_t)) {
        forEachBatch<sluice_source_key, sluice_source_state>(
            impl.mapFd(map), what, [&](const sluice_source_key* keys, const sluice_source_state*, uint32_t n) {
                for (uint32_t i = 0; i < n; i++) {
                    const uint32_t h = source_fold_hash(&keys[i]);
                    mark(word(h, mask), h);
                }
            });
    };
    fill("sluice_sources", "the source table", known_word);
    fill("sluice_probation", "the probation table", probation_word);
    // The sources the probation memory holds keep their probation bits: a
    // clear one skips the memory (sluice.bpf.c, admit_source).
    auto slots = [&](const char* map, const char* what) {
        std::vector<uint32_t> values(SLUICE_ADMIT_SLOTS);
        forEachBatch<uint32_t, uint32_t>(impl.mapFd(map), what,
                                         [&](const uint32_t* keys, const uint32_t* vals, uint32_t n) {
                                             for (uint32_t i = 0; i < n; i++)
                                                 values.at(keys[i]) = vals[i];
                                         });
        return values;
    };
    const std::vector<uint32_t> fps = slots("sluice_admit_fp", "the probation memory");
    const std::vector<uint32_t> folds = slots("sluice_admit_fold", "the probation memory's hashes");
    for (uint32_t slot = 0; slot < SLUICE_ADMIT_SLOTS; slot++)
        if (fps[slot])  // 0: an empty slot
            mark(probation_word(folds[slot], mask), folds[slot]);
    setKnownFilterOn(onFd, true);
}

// Does generation `to` give a new_sources budget to a policy that had none
// in generation `from` and keeps its state tag? Only a policy with a budget
// consults the probation table's filter, and the probation entries made
// without one have no bits there (sluice.bpf.c, admit_source).
bool gainsBudget(const Datapath::Impl& impl, uint32_t from, uint32_t to)
{
    std::set<uint32_t> without;
    for (uint32_t slot = 0; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl.policy(from, slot);
        if (p.name[0] && !p.new_sources.interval_ns)
            without.insert(p.state_tag);
    }
    for (uint32_t slot = 0; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl.policy(to, slot);
        if (p.name[0] && p.new_sources.interval_ns && without.contains(p.state_tag))
            return true;
    }
    return false;
}

// A flip from generation `from` to `to` under the InstallLock. When it gives
// a policy a budget, the filters are off from before the flip until a
// rebuild after it has put in the bits of the probation entries made without
// one. A failed rebuild leaves them off, which only costs speed (`sluice run`
// rebuilds filters it finds off), not the flip.
void flipGeneration(Datapath::Impl& impl, uint32_t from, uint32_t to)
{
    const bool refill = hasKnownFilter(impl) && gainsBudget(impl, from, to);
    if (refill) {
        setKnownFilterOn(impl.mapFd("sluice_known_on"), false);
        waitForReaders();
    }
    // The flip: one aligned 32-bit store, after everything before it is visible.
    __atomic_store_n(&impl.cfg()->active_gen, to, __ATOMIC_RELEASE);
    impl.bumpCacheEpoch();
    if (refill) {
        try {
            rebuildKnownFilter(impl, false, true);
        } catch (const std::exception&) {
        }
    }
}

// A Datapath opened from pins: the maps of its program that are not pinned
// (the presence filter: a load rebuilds it, so it never outlives its
// program), found through the program. None when it has none.
void adoptUnpinnedMaps(Datapath::Impl& impl)
{
    const int progFd = impl.progPin.get();
    if (progFd < 0)
        return;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(progFd, &info, &len) || info.nr_map_ids == 0)
        return;
    std::vector<uint32_t> ids(info.nr_map_ids);
    info = bpf_prog_info{};
    info.nr_map_ids = static_cast<uint32_t>(ids.size());
    info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
    len = sizeof(info);
    if (bpf_obj_get_info_by_fd(progFd, &info, &len))
        return;
    ids.resize(std::min<size_t>(ids.size(), info.nr_map_ids));
    for (uint32_t id : ids) {
        UniqueFd fd(bpf_map_get_fd_by_id(id));
        if (fd.get() < 0)
            continue;
        bpf_map_info map{};
        uint32_t mlen = sizeof(map);
        if (bpf_obj_get_info_by_fd(fd.get(), &map, &mlen))
            continue;
        const std::string_view name = map.name;
        if (name == "sluice_seen" || name == "sluice_known_on")
            impl.pinnedMaps.emplace(std::string(name), std::move(fd));
    }
}

}  // namespace

Datapath::Datapath(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Datapath::Datapath(Datapath&&) noexcept = default;
Datapath& Datapath::operator=(Datapath&&) noexcept = default;
Datapath::~Datapath() = default;

const std::string& Datapath::iface() const { return impl_->iface; }
const AttachInfo& Datapath::attachInfo() const { return impl_->info; }

bool Datapath::programAttached() const
{
    const unsigned idx = ::if_nametoindex(impl_->iface.c_str());
    return idx && queryAttached(static_cast<int>(idx)).found;
}

int Datapath::progFd() const
{
    if (impl_->skel)
        return bpf_program__fd(impl_->skel->progs.sluice_xdp);
    return impl_->progPin.get();
}

int Datapath::mapFd(const std::string& name) const
{
    int fd = impl_->mapFd(name.c_str());
    if (fd < 0)
        throwRuntime("the sluice program has no map " + name);
    return fd;
}

void ensureBpffs()
{
    struct statfs fs;
    if (::statfs("/sys/fs/bpf", &fs) == 0 && static_cast<uint32_t>(fs.f_type) == kBpffsMagic)
        return;
    if (::mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
        throwSys("bpffs is not mounted at /sys/fs/bpf and mounting it failed", errno);
}

namespace {

constexpr const char* kNoTickNote =
    "the kernel's tick is unknown (no CONFIG_HZ in a readable kernel config): cached refusals read the clock";

// The CONFIG_HZ a loaded sluice program runs with, from its .kconfig map
// (libbpf fills it at load; openSkeleton passes 0 when it could not).
std::optional<uint32_t> programTickHz(int progFd)
{
    using Kconfig = sluice_bpf::sluice_bpf__kconfig;
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (progFd < 0 || bpf_obj_get_info_by_fd(progFd, &info, &len))
        return std::nullopt;
    std::vector<uint32_t> ids(info.nr_map_ids);
    info = {};
    info.nr_map_ids = static_cast<uint32_t>(ids.size());
    info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
    len = sizeof info;
    if (bpf_obj_get_info_by_fd(progFd, &info, &len))
        return std::nullopt;
    ids.resize(std::min<size_t>(ids.size(), info.nr_map_ids));
    for (uint32_t id : ids) {
        UniqueFd map(bpf_map_get_fd_by_id(id));
        bpf_map_info mapInfo{};
        uint32_t mapLen = sizeof mapInfo;
        if (map.get() < 0 || bpf_obj_get_info_by_fd(map.get(), &mapInfo, &mapLen))
            continue;
        if (!std::string_view(mapInfo.name).ends_with(".kconfig") || mapInfo.value_size != sizeof(Kconfig))
            continue;
        Kconfig k{};
        uint32_t zero = 0;
        if (bpf_map_lookup_elem(map.get(), &zero, &k))
            return std::nullopt;
        return k.CONFIG_HZ;
    }
    return std::nullopt;
}

SkelPtr openSkeleton(const char* pinRoot, uint32_t maxSources)
{
    DECLARE_LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot,
                        .kconfig = Datapath::kconfigOverride());
    SkelPtr skel(sluice_bpf__open_opts(&opts));
    if (!skel)
        throwSys("cannot open the sluice BPF object", errno);
    // The kernel adds BPF_F_RDONLY_PROG to every devmap it creates, and
    // libbpf 1.1 compares a pinned map's flags with the object's before
    // reusing it: a pinned sluice_redirect (a program taken off by hand, a
    // crashed attach) was refused, and with it the state the other pins
    // keep. Ask for the pin's flags; the kernel refuses to create a devmap
    // with that flag, so only when there is a pin.
    if (pinRoot) {
        UniqueFd pin(bpf_obj_get((std::string(pinRoot) + "/sluice_redirect").c_str()));
        bpf_map_info info{};
        __u32 len = sizeof(info);
        if (pin.get() >= 0 && bpf_obj_get_info_by_fd(pin.get(), &info, &len) == 0 &&
            info.type == BPF_MAP_TYPE_DEVMAP)
            if (int err = bpf_map__set_map_flags(skel->maps.sluice_redirect, info.map_flags))
                throwSys("cannot match the pinned sluice_redirect's flags", err);
    }
    if (maxSources == 0)
        throwUsage("max_sources must be at least 1");
    const uint32_t slack = Datapath::lruSlack();
    const uint64_t entries = uint64_t(maxSources) + slack;
    if (entries > UINT32_MAX)
        throwUsage("max_sources " + std::to_string(maxSources) + " is too large: the source table holds at most " +
                   std::to_string(UINT32_MAX - slack) + " sources on this machine");
    int err = bpf_map__set_max_entries(skel->maps.sluice_sources, static_cast<uint32_t>(entries));
    if (err)
        throwSys("cannot size the source table", err);
    // A fleet source is also a tracked source: no more can be active. An
    // LRU too, with the same slack, so that none of them loses its count.
    err = bpf_map__set_max_entries(skel->maps.sluice_fleet_units,
                                   std::min<uint32_t>(maxSources, SLUICE_MAX_FLEET_SOURCES) + slack);
    if (err)
        throwSys("cannot size the fleet source table", err);
    // The presence filter is sized from the table's real size, slack too:
    // the program masks its hash with the same figure.
    err = bpf_map__set_max_entries(skel->maps.sluice_seen, sluice_seen_words(static_cast<uint32_t>(entries)));
    if (err)
        throwSys("cannot size the source filters", err);
    skel->rodata->sluice_known_mask = sluice_known_bits(static_cast<uint32_t>(entries)) - 1;
    err = bpf_map__set_max_entries(skel->maps.sluice_probation, sluice_probation_entries(maxSources));
    if (err)
        throwSys("cannot size the probation table", err);
    err = bpf_map__set_max_entries(skel->maps.sluice_bans, SLUICE_MAX_BANS + slack);
    if (err)
        throwSys("cannot size the ban table", err);
    err = bpf_map__set_max_entries(skel->maps.sluice_fleet_over, SLUICE_MAX_FLEET_OVER + slack);
    if (err)
        throwSys("cannot size the fleet over-limit table", err);
    return skel;
}

// `iface`: the interface whose pins the load reused, if any.
std::string loadFailure(const std::string& what, int err, const LogCapture& log, const std::string& iface = "")
{
    std::string msg = what + ": " + errnoText(err);
    if (err == -EPERM || err == -EACCES)
        msg += " (needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: run as root)";
    else if (log.contains("different") || log.contains("incompatible") || log.contains("reuse pinned map"))
        msg += " (the maps pinned under " + pinDir(iface.empty() ? "IFACE" : iface) +
               " do not match this sluice's, e.g. left by another version: `sluice detach " +
               (iface.empty() ? "IFACE" : iface) + "` removes them, and its buckets)";
    return msg + "; last lines of the libbpf/verifier log:" + log.tail(kVerifierTailLines);
}

}  // namespace

// libbpf fills the program's CONFIG_HZ from the kernel config, the
// release's /boot/config or /proc/config.gz, and refuses the whole object
// when neither opens, weak extern or not ("failed to open system Kconfig";
// containers without /boot, kernels without IKCONFIG_PROC). Then the tick is
// unknown: CONFIG_HZ=0 turns the over-limit cache's jiffies deadlines off, and
// every cached refusal reads the clock (bpf/lib/overcache.h).
const char* Datapath::kconfigOverride()
{
    utsname u{};
    if (::uname(&u) == 0 && ::access((std::string("/boot/config-") + u.release).c_str(), R_OK) == 0)
        return nullptr;
    return ::access("/proc/config.gz", R_OK) == 0 ? nullptr : "CONFIG_HZ=0\n";
}

uint32_t Datapath::lruSlack()
{
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        throwSys("cannot count possible CPUs", cpus);
    return sluice_lru_slack(static_cast<uint32_t>(cpus));
}

Datapath Datapath::loadUnattached(uint32_t maxSources, bool overCache)
{
    LogCapture log;
    auto impl = std::make_unique<Impl>();
    impl->skel = openSkeleton(nullptr, maxSources);
    impl->skel->rodata->sluice_over_cache = overCache ? 1 : 0;
    bpf_map* map;
    bpf_object__for_each_map(map, impl->skel->obj) {
        int err = bpf_map__set_pin_path(map, nullptr);
        if (err)
            throwSys("cannot unpin map", err);
    }
    if (int err = sluice_bpf__load(impl->skel.get()))
        throwRuntime(loadFailure("the kernel refused the sluice program", err, log));
    impl->mapArrays();
    rebuildKnownFilter(*impl, true);
    return Datapath(std::move(impl));
}

Datapath Datapath::attach(const AttachOptions& options)
{
    int ifindex = ifindexOf(options.iface);
    ensureBpffs();
    PinRootLock lock(true);
    if (queryAttached(ifindex).found)
        throwUsage("sluice is already attached to " + options.iface +
                   "; use `sluice apply` to change its policies or `sluice detach` first");
    std::string dir = pinDir(options.iface);
    PinCleanup cleanup(dir);
    const bool overPins = !cleanup.armed();
    mkdirPrivate(dir);

    LogCapture log;
    auto impl = std::make_unique<Impl>();
    impl->iface = options.iface;
    impl->pins = dir;
    // Maps already pinned here (a program detached by hand, a crashed
    // attach) are reused by libbpf: their state survives. Only at their
    // size, which libbpf would refuse as maps of another layout.
    if (auto pinned = pinnedMaxSources(options.iface); pinned && *pinned != options.maxSources)
        throwUsage(options.iface + "'s pinned source table (its buckets, in " + dir + ") holds " +
                   std::to_string(*pinned) + " sources, not " + std::to_string(options.maxSources) +
                   ": attach with --max-sources " + std::to_string(*pinned) + " to keep it, or `sluice detach " +
                   options.iface + "` first to start afresh");
    impl->skel = openSkeleton(dir.c_str(), options.maxSources);

    DECLARE_LIBXDP_OPTS(xdp_program_opts, xopts, .obj = impl->skel->obj, .prog_name = kProgName);
    impl->xdpProg.reset(xdp_program__create(&xopts));
    if (long err = libxdp_get_error(impl->xdpProg.get())) {
        (void)impl->xdpProg.release();
        throwRuntime(loadFailure("cannot prepare the sluice program", static_cast<int>(err), log));
    }
    enum xdp_attach_mode mode = XDP_MODE_UNSPEC;
    if (options.mode == XdpMode::Native)
        mode = XDP_MODE_NATIVE;
    else if (options.mode == XdpMode::Generic)
        mode = XDP_MODE_SKB;
    int err = xdp_program__attach(impl->xdpProg.get(), ifindex, mode, 0);
    if (err) {
        std::string what = "cannot attach to " + options.iface;
        if (err == -EEXIST || err == -EBUSY)
            throwRuntime(what + ": another XDP program is attached there; remove it first "
                                "(`xdp-loader status " + options.iface + "`)");
        if (err == -EOPNOTSUPP && options.mode == XdpMode::Native)
            throwRuntime(what + ": the driver has no native XDP; use --mode generic");
        throwRuntime(loadFailure(what, err, log, options.iface));
    }

    auto attached = queryAttached(ifindex);
    impl->info = attached.info;
    impl->info.overPins = overPins;
    if (!attached.info.dispatcher)
        impl->info.note = log.contains("dispatcher")
                              ? "libxdp's dispatcher could not load on this kernel; attached as a "
                                "single program (other XDP programs cannot share this interface)"
                              : "attached as a single program";
    else
        impl->info.note = "attached through libxdp's multi-program dispatcher";
    impl->info.tickHz = programTickHz(bpf_program__fd(impl->skel->progs.sluice_xdp));
    if (impl->info.tickHz == 0u)
        impl->info.note += std::string("; ") + kNoTickNote;

    std::string progPath = dir + "/" + kProgPin;
    ::unlink(progPath.c_str());
    if (int perr = bpf_obj_pin(bpf_program__fd(impl->skel->progs.sluice_xdp), progPath.c_str()))
        throwSys("cannot pin the program at " + progPath, perr);
    impl->mapArrays();
    rebuildKnownFilter(*impl, true);
    cleanup.release();
    return Datapath(std::move(impl));
}

Datapath Datapath::open(const std::string& iface)
{
    std::string dir = pinDir(iface);
    ensureBpffs();
    std::string config = dir + "/sluice_config";
    struct stat st;
    if (::stat(config.c_str(), &st)) {
        // A pin directory this process may not read (not root) is no
        // reason to tell the user to attach.
        if (errno != ENOENT)
            throwSys("cannot read " + dir, errno);
        throwUsage("sluice is not attached to " + iface + " (nothing pinned under " + dir +
                   "): run `sluice attach " + iface + "` first");
    }
    auto impl = std::make_unique<Impl>();
    impl->iface = iface;
    impl->pins = dir;
    for (const char* name : kMapNames) {
        std::string path = dir + "/" + name;
        int fd = bpf_obj_get(path.c_str());
        if (fd == -ENOENT)
            throwUsage("pinned map " + path + " is missing: " + dir +
                       " was pinned by another sluice version; run `sluice detach " + iface +
                       "` then `sluice attach " + iface + "` (buckets start afresh)");
        if (fd < 0)
            throwSys("cannot open pinned map " + path, fd);
        impl->pinnedMaps.emplace(name, UniqueFd(fd));
    }
    int pfd = bpf_obj_get((dir + "/" + kProgPin).c_str());
    impl->progPin = UniqueFd(pfd < 0 ? -1 : pfd);
    adoptUnpinnedMaps(*impl);
    if (unsigned idx = if_nametoindex(iface.c_str())) {
        auto attached = queryAttached(static_cast<int>(idx));
        impl->info = attached.info;
        if (!attached.found)
            impl->info.note = "pinned state present but the program is not attached";
    } else {
        // The pins are shared by every network namespace; the interface is
        // not (detach says the same).
        impl->info.note = "interface " + iface + " not found in this network namespace";
    }
    impl->info.tickHz = programTickHz(impl->progPin.get());
    if (impl->info.tickHz == 0u)
        impl->info.note += std::string(impl->info.note.empty() ? "" : "; ") + kNoTickNote;
    impl->mapArrays();
    return Datapath(std::move(impl));
}

DetachResult Datapath::detach(const std::string& iface, Pins pins)
{
    DetachResult result;
    std::string dir = pinDir(iface);
    PinRootLock lock(false);
    bool pinned = exists(dir);
    unsigned idx = if_nametoindex(iface.c_str());
    if (idx) {
        LogCapture log;
        KernelXdp k = kernelXdp(static_cast<int>(idx));
        MultiprogPtr mp;
        if (k.attachMode != XDP_ATTACHED_NONE && !k.single())
            mp.reset(xdp_multiprog__get_from_ifindex(static_cast<int>(idx)));
        if (k.single()) {
            if (k.name == kProgName) {
                // XDP_FLAGS_REPLACE with this program's fd: a program
                // attached in its place since the query is left alone.
                uint32_t flags = XDP_FLAGS_REPLACE | (k.attachMode == XDP_ATTACHED_SKB   ? XDP_FLAGS_SKB_MODE
                                                      : k.attachMode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE
                                                                                        : XDP_FLAGS_DRV_MODE);
                LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = k.fd.get());
                if (int err = bpf_xdp_detach(static_cast<int>(idx), flags, &o))
                    throwSys("cannot detach from " + iface, err);
                result.programDetached = true;
            }
        } else if (!mp || libxdp_get_error(mp.get())) {
            (void)mp.release();
        } else {
            enum xdp_attach_mode mode = xdp_multiprog__attach_mode(mp.get());
            for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp.get()); p;
                 p = xdp_multiprog__next_prog(p, mp.get())) {
                if (std::string(xdp_program__name(p)) != kProgName)
                    continue;
                if (int err = xdp_program__detach(p, static_cast<int>(idx), mode, 0))
                    throwSys("cannot detach from " + iface, err);
                result.programDetached = true;
                break;
            }
        }
    } else if (!pinned) {
        throwUsage("unknown interface '" + iface + "' and nothing pinned for it");
    } else {
        // The interface is gone (or lives in another network namespace):
        // only its pins can be removed from here.
        result.note = "interface " + iface + " not found in this network namespace; " +
                      (pins == Pins::Remove ? "removed its pins only" : "nothing detached, its pins kept");
    }
    if (!result.programDetached && !pinned)
        throwUsage("sluice is not attached to " + iface);
    if (pinned && pins == Pins::Remove) {
        removePins(dir);
        result.pinsRemoved = true;
    }
    return result;
}

// ---- rulesets -----------------------------------------------------------

std::vector<InstalledPolicy> Datapath::installedPolicies() const
{
    std::vector<InstalledPolicy> out;
    uint32_t gen = impl_->activeGen();
    for (uint32_t slot = 1; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl_->policy(gen, slot);
        if (!p.name[0])
            continue;
        InstalledPolicy ip;
        ip.name = std::string(p.name, strnlen(p.name, sizeof(p.name)));
        ip.slot = p.slot;
        ip.stateTag = p.state_tag;
        ip.ipv4Prefix = p.ipv4_prefix;
        ip.ipv6Prefix = p.ipv6_prefix;
        ip.key = static_cast<KeyMode>(p.key_mode);
        ip.scope = static_cast<Scope>(p.scope);
        for (unsigned i = 0; i < p.nlimits && i < SLUICE_MAX_LIMITS; i++)
            ip.limits.push_back(Limit{static_cast<LimitKind>(p.limits[i].kind), p.limits[i].count,
                                      p.limits[i].period_ns, p.limits[i].burst});
        out.push_back(ip);
    }
    return out;
}

namespace {

template <typename Key>
void clearGeneration(int fd, uint32_t gen)
{
    std::vector<Key> doomed;
    Key key{}, next{};
    int err = bpf_map_get_next_key(fd, nullptr, &next);
    while (!err) {
        if (next.gen == gen)
            doomed.push_back(next);
        key = next;
        err = bpf_map_get_next_key(fd, &key, &next);
    }
    if (err != -ENOENT)
        throwSys("cannot list allow/deny entries", err);
    for (const auto& k : doomed)
        if (int derr = bpf_map_delete_elem(fd, &k); derr && derr != -ENOENT)
            throwSys("cannot remove an allow/deny entry", derr);
}

template <typename Entry>
void writeEntries(int fd, const std::vector<Entry>& entries, uint32_t gen)
{
    for (auto e : entries) {
        e.key.gen = gen;
        if (int err = bpf_map_update_elem(fd, &e.key, &e.kind, BPF_ANY))
            throwSys("cannot write an allow/deny entry", err);
    }
}

}  // namespace

namespace {

// redirect_to names an interface of this network namespace: resolved
// now, so a later rename does not change where the excess goes.
Ruleset resolveRedirects(const Ruleset& input)
{
    Ruleset rules = input;
    for (auto& p : rules.policies) {
        if (p.redirectTo.empty())
            continue;
        unsigned idx = if_nametoindex(p.redirectTo.c_str());
        if (!idx)
            throwUsage("policy '" + p.name + "': redirect_to interface '" + p.redirectTo +
                       "' does not exist (`ip link show`)");
        p.redirectIfindex = idx;
    }
    return rules;
}

}  // namespace

void Datapath::validate(const Ruleset& rules) const
{
    compileRuleset(resolveRedirects(rules), installedPolicies());
}

void Datapath::install(const Ruleset& input)
{
    Ruleset rules = resolveRedirects(input);
    auto previous = installedPolicies();
    CompiledRuleset compiled = compileRuleset(rules, previous);

    InstallLock lock(impl_->pins);
    uint32_t active = impl_->activeGen();
    uint32_t next = active ^ 1;
    waitForReaders();

    // The redirect targets of the inactive generation: old ones out, new
    // ones in, before any policy of it can point at them.
    int devFd = impl_->mapFd("sluice_redirect");
    for (uint32_t slot = 0; slot < SLUICE_MAX_POLICIES; slot++) {
        if (!impl_->policy(next, slot).redirect_ifindex)
            continue;
        uint32_t key = next * SLUICE_MAX_POLICIES + slot;
        if (int err = bpf_map_delete_elem(devFd, &key); err && err != -ENOENT)
            throwSys("cannot clear a redirect target", err);
    }
    for (uint32_t slot = 0; slot < SLUICE_MAX_POLICIES; slot++)
        impl_->policy(next, slot) = sluice_policy{};
    for (const auto& p : compiled.policies) {
        if (!p.redirect_ifindex)
            continue;
        uint32_t key = next * SLUICE_MAX_POLICIES + p.slot, ifindex = p.redirect_ifindex;
        if (int err = bpf_map_update_elem(devFd, &key, &ifindex, BPF_ANY))
            throwSys("cannot set the redirect target of policy '" + std::string(p.name) + "'", err);
    }
    for (const auto& p : compiled.policies)
        impl_->policy(next, p.slot) = p;
    uint32_t base = sluice_port_key(next, 0, 0);
    for (uint32_t k = 0; k < SLUICE_PROTOS * SLUICE_PORTS; k++)
        impl_->portSlot(base + k) = SLUICE_SLOT_NONE;
    for (const auto& [key, slot] : compiled.ports)
        impl_->portSlot(base + key) = slot;

    int fd4 = impl_->mapFd("sluice_lists4"), fd6 = impl_->mapFd("sluice_lists6");
    clearGeneration<sluice_lpm4_key>(fd4, next);
    clearGeneration<sluice_lpm6_key>(fd6, next);
    writeEntries(fd4, compiled.lists4, next);
    writeEntries(fd6, compiled.lists6, next);

    // A name new to this generation starts its counters at zero: one batch
    // update for all of them (10k new policies are 130k counters).
    std::set<uint32_t> previousSlots;
    for (const auto& ip : previous)
        previousSlots.insert(ip.slot);
    std::vector<uint32_t> statKeys;
    for (const auto& p : compiled.policies) {
        if (previousSlots.count(p.slot))
            continue;
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
            statKeys.push_back(p.slot * SLUICE_VERDICT_COUNT + v);
    }
    if (!statKeys.empty()) {
        std::vector<sluice_counter> zeros(statKeys.size() * size_t(impl_->ncpus));
        uint32_t n = static_cast<uint32_t>(statKeys.size());
        if (int err = bpf_map_update_batch(impl_->mapFd("sluice_stats"), statKeys.data(), zeros.data(), &n,
                                           nullptr))
            throwSys("cannot reset counters", err);
    }

    sluice_config* cfg = impl_->cfg();
    cfg->gen[next].flags = compiled.flags;
    cfg->gen[next].policies = static_cast<uint32_t>(compiled.policies.size());
    flipGeneration(*impl_, active, next);
    impl_->undoEpoch = __atomic_load_n(&cfg->cache_epoch, __ATOMIC_SEQ_CST);
}

void Datapath::undoInstall()
{
    InstallLock lock(impl_->pins);
    sluice_config* cfg = impl_->cfg();
    const auto epoch = std::exchange(impl_->undoEpoch, std::nullopt);
    // Every install and reset bumps the epoch: unchanged, the inactive
    // generation is the one our install replaced, untouched since.
    if (!epoch || *epoch != __atomic_load_n(&cfg->cache_epoch, __ATOMIC_SEQ_CST))
        throwRuntime("cannot undo the last install on " + impl_->iface + ": the rules changed since");
    // No wait for readers: nothing writes the generation flipped to, and
    // packets still reading the other one find it as they left it.
    const uint32_t active = impl_->activeGen();
    flipGeneration(*impl_, active, active ^ 1);
}

Ruleset Datapath::installed() const
{
    Ruleset out;
    uint32_t gen = impl_->activeGen();
    std::map<uint32_t, size_t> bySlot;
    for (uint32_t slot = 1; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl_->policy(gen, slot);
        if (!p.name[0])
            continue;
        Policy pol;
        pol.name = std::string(p.name, strnlen(p.name, sizeof(p.name)));
        pol.proto = static_cast<Proto>(p.proto);
        pol.action = static_cast<Action>(p.action);
        pol.key = static_cast<KeyMode>(p.key_mode);
        pol.ipv4Prefix = p.ipv4_prefix;
        pol.ipv6Prefix = p.ipv6_prefix;
        pol.scope = static_cast<Scope>(p.scope);
        if (p.redirect_ifindex) {
            char name[IF_NAMESIZE] = {};
            pol.redirectIfindex = p.redirect_ifindex;
            pol.redirectTo = if_indextoname(p.redirect_ifindex, name)
                                 ? name
                                 : "ifindex " + std::to_string(p.redirect_ifindex);
        }
        if (p.ban_ns) {
            pol.banNs = p.ban_ns;
            pol.banAfter = Limit{LimitKind::Packets, p.ban_after.count, p.ban_after.period_ns,
                                 p.ban_after.burst};
        }
        if (p.new_sources.interval_ns)
            pol.newSources = Limit{LimitKind::Packets, p.new_sources.count, p.new_sources.period_ns,
                                   p.new_sources.burst};
        for (unsigned i = 0; i < p.nlimits && i < SLUICE_MAX_LIMITS; i++)
            pol.limits.push_back(Limit{static_cast<LimitKind>(p.limits[i].kind), p.limits[i].count,
                                       p.limits[i].period_ns, p.limits[i].burst});
        bySlot[slot] = out.policies.size();
        out.policies.push_back(pol);
    }
    for (uint32_t proto = 0; proto < SLUICE_PROTOS; proto++) {
        for (uint32_t port = 0; port < SLUICE_PORTS; port++) {
            uint32_t slot = impl_->portSlot(sluice_port_key(gen, proto, port));
            auto it = bySlot.find(slot);
            if (slot == SLUICE_SLOT_NONE || it == bySlot.end())
                continue;
            auto& ranges = out.policies[it->second].ports;
            if (!ranges.empty() && ranges.back().last + 1u == port)
                ranges.back().last = static_cast<uint16_t>(port);
            else
                ranges.push_back({static_cast<uint16_t>(port), static_cast<uint16_t>(port)});
        }
    }

    auto readList = [&](int fd, auto keyType, bool v6) {
        using Key = decltype(keyType);
        Key key{}, next{};
        int err = bpf_map_get_next_key(fd, nullptr, &next);
        while (!err) {
            uint32_t kind = 0;
            if (next.gen == gen && bpf_map_lookup_elem(fd, &next, &kind) == 0) {
                Cidr c;
                if (v6) {
                    std::memcpy(c.addr.bytes.data(), &next.addr, 16);
                } else {
                    c.addr.bytes[10] = c.addr.bytes[11] = 0xff;
                    std::memcpy(&c.addr.bytes[12], &next.addr, 4);
                    c.addr.isV4 = true;
                }
                c.prefix = static_cast<uint8_t>(next.prefixlen - 32);
                (kind == SLUICE_LIST_DENY ? out.deny : out.allow).push_back(c);
            }
            key = next;
            err = bpf_map_get_next_key(fd, &key, &next);
        }
    };
    readList(impl_->mapFd("sluice_lists4"), sluice_lpm4_key{}, false);
    readList(impl_->mapFd("sluice_lists6"), sluice_lpm6_key{}, true);
    return out;
}

// ---- counters and sources -------------------------------------------------

std::vector<SlotCounters> Datapath::counters() const
{
    std::vector<SlotCounters> out;
    SlotCounters none;
    none.slot = SLUICE_SLOT_NONE;
    out.push_back(none);
    for (const auto& p : installedPolicies()) {
        SlotCounters sc;
        sc.slot = p.slot;
        sc.policy = p.name;
        out.push_back(sc);
    }
    int fd = impl_->mapFd("sluice_stats");
    std::vector<sluice_counter> percpu(impl_->ncpus);
    for (auto& sc : out) {
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
            uint32_t key = sc.slot * SLUICE_VERDICT_COUNT + v;
            if (int err = bpf_map_lookup_elem(fd, &key, percpu.data()))
                throwSys("cannot read counters", err);
            for (const auto& c : percpu) {
                sc.verdicts[v].packets += c.packets;
                sc.verdicts[v].bytes += c.bytes;
            }
        }
    }
    return out;
}

uint64_t Datapath::nowNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

sluice_source_key sourceKey(const sluice_policy& p, const Address& addr)
{
    sluice_source_key key{};
    key.state_tag = p.state_tag;
    std::memcpy(key.addr, addr.bytes.data(), 16);
    const __u32* mask = addr.isV4 ? p.mask4 : p.mask6;
    for (int i = 0; i < 4; i++)
        key.addr[i] &= mask[i];
    return key;
}

SourceState describeSource(const sluice_policy& p, const sluice_source_key& key,
                           const sluice_source_state& st, uint64_t now)
{
    SourceState out;
    out.policy = std::string(p.name, strnlen(p.name, sizeof(p.name)));
    std::memcpy(out.key.bytes.data(), key.addr, 16);
    static const std::array<uint8_t, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    out.key.isV4 = std::equal(mapped.begin(), mapped.end(), out.key.bytes.begin());
    out.prefix = out.key.isV4 ? p.ipv4_prefix : p.ipv6_prefix;
    for (unsigned i = 0; i < p.nlimits && i < SLUICE_MAX_LIMITS; i++) {
        const sluice_limit& l = p.limits[i];
        LimitState ls;
        ls.limit = Limit{static_cast<LimitKind>(l.kind), l.count, l.period_ns, l.burst};
        ls.tatNs = st.tat_ns[i];
        ls.remaining = gcra_remaining(&l, st.tat_ns[i], now);
        ls.retryAfterNs = gcra_retry_after_ns(&l, st.tat_ns[i], now);
        out.limits.push_back(ls);
    }
    return out;
}

}  // namespace

std::optional<SourceState> Datapath::source(const std::string& policyName, const Address& addr) const
{
    uint32_t gen = impl_->activeGen();
    for (uint32_t slot = 1; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl_->policy(gen, slot);
        if (policyName != std::string(p.name, strnlen(p.name, sizeof(p.name))))
            continue;
        sluice_source_key key = sourceKey(p, addr);
        sluice_source_state st{};
        int err = bpf_map_lookup_elem(impl_->mapFd("sluice_sources"), &key, &st);
        if (err == -ENOENT)  // seen once: its state is on probation
            err = bpf_map_lookup_elem(impl_->mapFd("sluice_probation"), &key, &st);
        if (err && err != -ENOENT)
            throwSys("cannot read source state", err);
        uint64_t until = 0, now = nowNs();
        int berr = bpf_map_lookup_elem(impl_->mapFd("sluice_bans"), &key, &until);
        if (berr && berr != -ENOENT)
            throwSys("cannot read the ban table", berr);
        bool banned = !berr && until > now;
        if (err == -ENOENT && !banned)
            return std::nullopt;
        SourceState out = describeSource(p, key, st, now);
        if (banned) {
            out.bannedUntilNs = until;
            out.banRemainingNs = until - now;
        }
        return out;
    }
    throwUsage("no policy named '" + policyName + "'");
}

namespace {

// The probation memory's slot of `key` forgets it (lib/admit.h), unless the
// slot now holds another source. fd: the sluice_admit_fp map.
void forgetProbationMemory(int fd, const sluice_source_key& key)
{
    const uint32_t slot = admit_slot(&key), empty = 0;
    uint32_t fp = 0;
    if (bpf_map_lookup_elem(fd, &slot, &fp) == 0 && fp == admit_fingerprint(&key))
        bpf_map_update_elem(fd, &slot, &empty, BPF_ANY);
}

}  // namespace

ResetCount Datapath::resetSource(const Address& addr)
{
    ResetCount removed;
    uint32_t gen = impl_->activeGen();
    int fd = impl_->mapFd("sluice_sources");
    for (uint32_t slot = 1; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl_->policy(gen, slot);
        if (!p.name[0])
            continue;
        sluice_source_key key = sourceKey(p, addr);
        if (bpf_map_delete_elem(fd, &key) == 0)
            removed.states++;
        if (bpf_map_delete_elem(impl_->mapFd("sluice_probation"), &key) == 0)
            removed.states++;
        forgetProbationMemory(impl_->mapFd("sluice_admit_fp"), key);
        if (bpf_map_delete_elem(impl_->mapFd("sluice_bans"), &key) == 0)
            removed.bans++;
        // Fleet state is not counted: it goes with the bucket state.
        bpf_map_delete_elem(impl_->mapFd("sluice_fleet_over"), &key);
        bpf_map_delete_elem(impl_->mapFd("sluice_fleet_units"), &key);
    }
    impl_->bumpCacheEpoch();
    return removed;
}

ResetCount Datapath::resetAll()
{
    ResetCount removed;
    // The fleet maps go with the bucket state and are not counted.
    for (const char* map : {"sluice_sources", "sluice_probation", "sluice_bans", "sluice_fleet_over",
                            "sluice_fleet_units"}) {
        const std::string_view name = map;
        size_t* counted = name == "sluice_bans"                                           ? &removed.bans
                          : name != "sluice_fleet_over" && name != "sluice_fleet_units" ? &removed.states
                                                                                          : nullptr;
        int fd = impl_->mapFd(map);
        std::vector<sluice_source_key> keys;
        sluice_source_key key{}, next{};
        int err = bpf_map_get_next_key(fd, nullptr, &next);
        while (!err) {
            keys.push_back(next);
            key = next;
            err = bpf_map_get_next_key(fd, &key, &next);
        }
        for (const auto& k : keys)
            if (bpf_map_delete_elem(fd, &k) == 0 && counted)
                ++*counted;
    }
    // An empty fingerprint empties the slot: its state is never read again.
    const uint32_t empty = 0;
    for (uint32_t slot = 0; slot < SLUICE_ADMIT_SLOTS; slot++)
        bpf_map_update_elem(impl_->mapFd("sluice_admit_fp"), &slot, &empty, BPF_ANY);
    impl_->bumpCacheEpoch();
    // The table is (about) empty: so is its filter again.
    if (hasKnownFilter(*impl_))
        rebuildKnownFilter(*impl_, false);
    return removed;
}

uint32_t Datapath::lruCapacity(int mapFd, const std::string& table)
{
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(mapFd, &info, &len))
        throwSys("cannot read the size of " + table, err);
    // What was promised: the slack is the kernel's, not room for more.
    const uint32_t slack = lruSlack();
    if (info.max_entries <= slack)
        throwRuntime(table + " has " + std::to_string(info.max_entries) + " entries, fewer than the " +
                     std::to_string(slack) +
                     " this sluice adds to its size: it was loaded by another version (`sluice detach` it)");
    return info.max_entries - slack;
}

void Datapath::refreshKnownFilter()
{
    rebuildKnownFilter(*impl_, false);
}

std::optional<KnownFilterState> Datapath::knownFilter() const
{
    if (!hasKnownFilter(*impl_))
        return std::nullopt;
    const int onFd = impl_->mapFd("sluice_known_on");
    const KnownFilterWords filter = mapKnownFilter(impl_->mapFd("sluice_seen"));
    KnownFilterState state;
    state.bits = uint64_t(filter.half) * SLUICE_KNOWN_WORD_BITS;
    state.set = filter.setBits(0);
    state.probationSet = filter.setBits(filter.half);
    const uint32_t zero = 0;
    uint32_t on = 0;
    if (int err = bpf_map_lookup_elem(onFd, &zero, &on))
        throwSys("cannot read whether the source filters are on", err);
    state.on = on != 0;
    return state;
}

uint32_t Datapath::sourceCapacity() const
{
    return lruCapacity(impl_->mapFd("sluice_sources"), "the source table (sluice_sources)");
}

size_t Datapath::bannedSources() const
{
    int fd = impl_->mapFd("sluice_bans");
    uint64_t now = nowNs();
    size_t n = 0;
    sluice_source_key key{}, next{};
    int err = bpf_map_get_next_key(fd, nullptr, &next);
    while (!err) {
        uint64_t until = 0;
        if (bpf_map_lookup_elem(fd, &next, &until) == 0 && until > now)
            n++;
        key = next;
        err = bpf_map_get_next_key(fd, &key, &next);
    }
    return n;
}

uint32_t Datapath::banCapacity() const
{
    return lruCapacity(impl_->mapFd("sluice_bans"), "the ban table (sluice_bans)");
}

std::vector<SourceState> Datapath::allSources() const
{
    uint32_t gen = impl_->activeGen();
    std::map<uint32_t, const sluice_policy*> byTag;
    for (uint32_t slot = 1; slot < SLUICE_MAX_POLICIES; slot++) {
        const sluice_policy& p = impl_->policy(gen, slot);
        if (p.name[0])
            byTag[p.state_tag] = &p;
    }
    std::vector<SourceState> out;
    uint64_t now = nowNs();
    // Sources on probation (seen once) hold bucket state too.
    for (const char* map : {"sluice_sources", "sluice_probation"}) {
        int fd = impl_->mapFd(map);
        sluice_source_key key{}, next{};
        int err = bpf_map_get_next_key(fd, nullptr, &next);
        while (!err) {
            sluice_source_state st{};
            auto it = byTag.find(next.state_tag);
            if (it != byTag.end() && bpf_map_lookup_elem(fd, &next, &st) == 0)
                out.push_back(describeSource(*it->second, next, st, now));
            key = next;
            err = bpf_map_get_next_key(fd, &key, &next);
        }
    }
    return out;
}

void Datapath::setResponder(int socket4Fd, int socket6Fd)
{
    const std::pair<uint32_t, int> entries[] = {{SLUICE_RESPONDER_KEY_V4, socket4Fd},
                                                {SLUICE_RESPONDER_KEY_V6, socket6Fd}};
    for (auto [key, fd] : entries) {
        uint64_t value = static_cast<uint64_t>(fd);
        if (int err = bpf_map_update_elem(impl_->mapFd("sluice_responder"), &key, &value, BPF_ANY))
            throwSys("cannot put the responder socket into sluice_responder", err);
    }
}

void Datapath::clearResponder()
{
    for (uint32_t key : {SLUICE_RESPONDER_KEY_V4, SLUICE_RESPONDER_KEY_V6}) {
        int err = bpf_map_delete_elem(impl_->mapFd("sluice_responder"), &key);
        if (err && err != -ENOENT)
            throwSys("cannot clear sluice_responder", err);
    }
}

bool Datapath::responderRunning() const
{
    for (uint32_t key : {SLUICE_RESPONDER_KEY_V4, SLUICE_RESPONDER_KEY_V6}) {
        uint64_t cookie = 0;
        int err = bpf_map_lookup_elem(impl_->mapFd("sluice_responder"), &key, &cookie);
        if (err && err != -ENOENT)
            throwSys("cannot read sluice_responder", err);
        if (err)
            return false;
    }
    return true;
}

std::optional<RespondedConnection> Datapath::respondedConnection(const Flow& flow) const
{
    sluice_flow_key key{};
    std::memcpy(key.src, flow.src.bytes.data(), 16);
    std::memcpy(key.dst, flow.dst.bytes.data(), 16);
    key.sport = flow.sport;
    key.dport = flow.dport;
    sluice_flow_state fs{};
    int err = bpf_map_lookup_elem(impl_->mapFd("sluice_respond_flows"), &key, &fs);
    if (err == -ENOENT)
        return std::nullopt;
    if (err)
        throwSys("cannot read sluice_respond_flows", err);
    uint64_t now = nowNs();
    if (fs.until_ns <= now || fs.slot == SLUICE_SLOT_NONE || fs.slot >= SLUICE_MAX_POLICIES)
        return std::nullopt;
    // A slot keeps its policy while the name stays; read the active
    // generation, which a reload since the verdict may have replaced.
    const sluice_policy& p = impl_->policy(impl_->activeGen(), fs.slot);
    if (!p.name[0] || p.action != SLUICE_ACTION_RESPOND)
        return std::nullopt;
    sluice_source_key skey = sourceKey(p, flow.src);
    sluice_source_state st{};
    err = bpf_map_lookup_elem(impl_->mapFd("sluice_sources"), &skey, &st);
    if (err && err != -ENOENT)
        throwSys("cannot read source state", err);
    SourceState src = describeSource(p, skey, st, now);
    return RespondedConnection{src.policy, std::move(src.limits)};
}

std::string Datapath::pinDirectory(const std::string& iface)
{
    return pinDir(iface);
}

std::optional<uint32_t> Datapath::pinnedMaxSources(const std::string& iface)
{
    UniqueFd fd(bpf_obj_get((pinDir(iface) + "/sluice_sources").c_str()));
    if (fd.get() < 0) {
        if (errno == ENOENT)
            return std::nullopt;
        throwSys("cannot open " + pinDir(iface) + "/sluice_sources", errno);
    }
    return lruCapacity(fd.get(), pinDir(iface) + "/sluice_sources");
}

std::vector<std::string> Datapath::pinnedInterfaces()
{
    std::vector<std::string> out;
    DIR* d = ::opendir(SLUICE_PIN_ROOT);
    if (!d) {
        // Unreadable is not "attached nowhere" (a user who is not root).
        if (errno != ENOENT)
            throwSys("cannot read " + std::string(SLUICE_PIN_ROOT), errno);
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (validInterfaceName(name) && exists(pinDir(name) + "/sluice_config"))
            out.push_back(name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

size_t Datapath::trackedSources() const
{
    size_t n = 0;
    for (const char* map : {"sluice_sources", "sluice_probation"}) {
        int fd = impl_->mapFd(map);
        sluice_source_key key{}, next{};
        int err = bpf_map_get_next_key(fd, nullptr, &next);
        while (!err) {
            n++;
            key = next;
            err = bpf_map_get_next_key(fd, &key, &next);
        }
    }
    return n;
}

// ---- names ----------------------------------------------------------------

std::string xdpModeName(XdpMode mode)
{
    switch (mode) {
    case XdpMode::Auto: return "auto";
    case XdpMode::Native: return "native";
    case XdpMode::Generic: return "generic";
    }
    return "unknown";
}

std::optional<XdpMode> xdpModeFromName(const std::string& name)
{
    for (auto m : {XdpMode::Auto, XdpMode::Native, XdpMode::Generic})
        if (xdpModeName(m) == name)
            return m;
    return std::nullopt;
}

std::string verdictName(uint32_t verdict)
{
    static const char* const names[SLUICE_VERDICT_COUNT] = {
        "passed", "admitted", "limited",  "monitored",  "allowed", "denied",
        "malformed", "fragment", "rejected", "redirected", "banned",
        "responded", "respond_fallback", "new_source",
    };
    return verdict < SLUICE_VERDICT_COUNT ? names[verdict] : "unknown";
}

}  // namespace sluice
