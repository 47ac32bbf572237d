// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The bypass corpus (issue #7 point 1, README "Bypass corpus"): every crafted
// shape of tests/integration/bypass/corpus.py, sent as real frames from a
// client namespace over a veth to a receiver namespace where `sluice attach`
// polices UDP 7000 and TCP 7100 at "5 per minute" and denies one source per
// family. Per shape, table-driven:
//  - what reached the receiver: datagrams its UDP sockets on 7000 read (per
//    source), and segments its TCP layer took in (Tcp InSegs of the
//    namespace; nothing listens on 7100, so the kernel answers with RSTs and
//    no segment is counted twice) — never more than the burst, and nothing
//    for the shapes the rule drops or from the denied source;
//  - sluice's counters moved by exactly the frames the rule names, under the
//    verdicts it names (admitted/limited for charged frames, malformed,
//    fragment, denied, passed).
// One python process (scapy starts in ~1-2 s) sends every shape, one shape at
// a time on request, each from its own source address so each has fresh
// buckets. The rows' `stack` column is what the receiver's kernel does with
// the shape when nothing stops it (measured without sluice, see README).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datapath.h"
#include "netns.h"
#include "paths.h"

using namespace slit;
using Json = nlohmann::json;

namespace {

constexpr uint16_t kUdpPort = 7000;
constexpr uint16_t kTcpPort = 7100;
constexpr int kBurst = 5;          // "5 per minute": 5 at once, then one per 12 s
constexpr int kCopies = 50;        // copies of a shape from a policed source
constexpr int kDeniedCopies = 20;  // copies of a shape from the denied source
constexpr int kFirstSource = 20;   // host part of the first per-shape source
constexpr int kDeniedHost = 250;   // host part of the denied sources
const Millis kReplyLimit(20000);   // scapy's start, or one send
const Millis kCountLimit(3000);    // for sluice's counters to take in a send

enum class L4 { Udp, Tcp };

// What the receiver's kernel does with the shape when sluice lets it through
// (measured with no program attached): delivers it to the socket / TCP layer,
// or discards it on its own (checksum, overlap, no handler, ...).
enum class Stack { Delivers, Drops };

// One shape in one family and its rule: the frames of one copy by the
// verdict sluice gives them.
struct Row {
    const char* shape;
    int family;
    L4 l4;
    int charged;    // charged to the policy: admitted, then limited
    int passed;     // matched no policy: passed untouched
    int malformed;  // dropped, `malformed`
    int fragment;   // dropped, `fragment`
    Stack stack;
    const char* why;

    int frames() const { return charged + passed + malformed + fragment; }
};

const Row kRows[] = {
    // Controls: the plain shapes, charged and delivered up to the burst.
    {"udp_plain", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "control"},
    {"udp_plain", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "control"},
    {"tcp_syn", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "control"},
    {"tcp_syn", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "control"},
    // VLAN ID 0 tags: the stack strips even three of them and delivers.
    {"vlan1_udp", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "parsed through one tag"},
    {"vlan1_udp", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "parsed through one tag"},
    {"vlan2_udp", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "parsed through two tags"},
    {"vlan2_udp", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "parsed through two tags"},
    {"vlan3_udp", 4, L4::Udp, 0, 0, 1, 0, Stack::Delivers, "a third tag is past the parser"},
    {"vlan3_udp", 6, L4::Udp, 0, 0, 1, 0, Stack::Delivers, "a third tag is past the parser"},
    {"vlan1_syn", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "parsed through one tag"},
    {"vlan1_syn", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "parsed through one tag"},
    // TCP flags and ECN: every packet of a `packets` limit is charged.
    {"ecn_udp", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "ECN bits change nothing"},
    {"ecn_udp", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "ECN bits change nothing"},
    {"ecn_syn", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "an ECN-setup SYN is a SYN"},
    {"ecn_syn", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "an ECN-setup SYN is a SYN"},
    {"syn_payload", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a SYN, whatever it carries"},
    {"syn_payload", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a SYN, whatever it carries"},
    {"synack_outside", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a packet like any other"},
    {"synack_outside", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a packet like any other"},
    {"rst_outside", 4, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a packet like any other"},
    {"rst_outside", 6, L4::Tcp, 1, 0, 0, 0, Stack::Delivers, "a packet like any other"},
    // Headers cut short or inconsistent.
    {"tcp_truncated", 4, L4::Tcp, 0, 0, 1, 0, Stack::Delivers, "TCP header cut short"},
    {"tcp_truncated", 6, L4::Tcp, 0, 0, 1, 0, Stack::Delivers, "TCP header cut short"},
    {"udp_truncated", 4, L4::Udp, 0, 0, 1, 0, Stack::Drops, "UDP header cut short"},
    {"udp_truncated", 6, L4::Udp, 0, 0, 1, 0, Stack::Drops, "UDP header cut short"},
    {"tcp_doff_short", 4, L4::Tcp, 0, 0, 1, 0, Stack::Delivers, "TCP data offset < 5"},
    {"tcp_doff_short", 6, L4::Tcp, 0, 0, 1, 0, Stack::Delivers, "TCP data offset < 5"},
    {"udp_bad_checksum", 4, L4::Udp, 1, 0, 0, 0, Stack::Drops, "charged; the stack checks sums"},
    {"udp_bad_checksum", 6, L4::Udp, 1, 0, 0, 0, Stack::Drops, "charged; the stack checks sums"},
    {"ipv4_options", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "options skipped by the IHL"},
    {"ipv4_options_max", 4, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "options skipped by the IHL"},
    {"ipv4_ihl_short", 4, L4::Udp, 0, 0, 1, 0, Stack::Drops, "IHL < 5"},
    {"ipv4_ihl_over_total", 4, L4::Udp, 0, 0, 1, 0, Stack::Drops, "IHL beyond the total length"},
    // Fragments: the first is charged, the later ones follow its verdict.
    {"frag_udp", 4, L4::Udp, 2, 0, 0, 0, Stack::Delivers, "every fragment charged"},
    {"frag_udp", 6, L4::Udp, 2, 0, 0, 0, Stack::Delivers, "every fragment charged"},
    // IPv4: the second fragment, at offset 8, is the RFC 1858 overlap too.
    {"frag_tiny_tcp", 4, L4::Tcp, 0, 0, 2, 0, Stack::Delivers, "RFC 1858 tiny fragment"},
    {"frag_tiny_tcp", 6, L4::Tcp, 0, 0, 1, 1, Stack::Drops, "RFC 1858 tiny fragment"},
    {"frag_tiny_udp", 4, L4::Udp, 0, 0, 1, 1, Stack::Drops, "first fragment without ports"},
    {"frag_tiny_udp", 6, L4::Udp, 0, 0, 1, 1, Stack::Drops, "first fragment without ports"},
    {"frag_overlap_udp", 4, L4::Udp, 3, 0, 0, 0, Stack::Drops, "charged; overlaps discarded"},
    {"frag_overlap_udp", 6, L4::Udp, 3, 0, 0, 0, Stack::Drops, "charged; overlaps discarded"},
    {"frag_overlap_tcp", 4, L4::Tcp, 2, 0, 1, 0, Stack::Drops, "offset 8 rewrites flags"},
    {"frag_overlap_tcp", 6, L4::Tcp, 3, 0, 0, 0, Stack::Drops, "charged; overlaps discarded"},
    {"frag_rewrite_port", 4, L4::Udp, 2, 1, 0, 0, Stack::Drops, "each first judged by its port"},
    {"frag_rewrite_port", 6, L4::Udp, 2, 1, 0, 0, Stack::Drops, "each first judged by its port"},
    {"frag_later_only", 4, L4::Udp, 0, 0, 0, 2, Stack::Drops, "no first fragment seen"},
    {"frag_later_only", 6, L4::Udp, 0, 0, 0, 2, Stack::Drops, "no first fragment seen"},
    // IPv6 headers.
    {"ipv6_atomic_fragment", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "a whole datagram"},
    {"ipv6_frag_split_chain", 6, L4::Udp, 0, 0, 1, 1, Stack::Drops, "RFC 7112 chain split"},
    {"ipv6_ext_chain_at_depth", 6, L4::Udp, 1, 0, 0, 0, Stack::Delivers, "8 headers: parsed"},
    {"ipv6_ext_chain_deep", 6, L4::Udp, 0, 0, 1, 0, Stack::Delivers, "9 headers: past the parser"},
    {"ipv6_ext_experimental_253", 6, L4::Udp, 0, 1, 0, 0, Stack::Drops, "no handler in the stack"},
    {"ipv6_ext_experimental_254", 6, L4::Udp, 0, 1, 0, 0, Stack::Drops, "no handler in the stack"},
    {"ipv6_ext_unassigned", 6, L4::Udp, 0, 1, 0, 0, Stack::Drops, "no handler in the stack"},
    {"ipv6_ext_unknown_after_dstopts", 6, L4::Udp, 0, 1, 0, 0, Stack::Drops,
     "no handler in the stack"},
};

std::string corpusScript() { return sourceDir() + "/tests/integration/bypass/corpus.py"; }

std::string macOf(const Netns& ns, const std::string& iface) {
    return Json::parse(ns.ip({"-j", "link", "show", iface})).at(0).at("address").get<std::string>();
}

// corpus.py --serve in the client namespace: one request line, one reply line.
class Corpus {
public:
    Corpus(const Netns& client, const std::vector<std::string>& args) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe failed");
        std::vector<std::string> argv = {"nsenter", "--net=" + client.path(), "/usr/bin/python3",
                                         corpusScript(), "--serve"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        pid_ = fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            dup2(in[0], 0);
            dup2(out[1], 1);
            execvp(cargv[0], cargv.data());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        toChild_ = in[1];
        fromChild_ = out[0];
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        std::string hello = readLine(kReplyLimit);
        if (hello != "ready")
            throw std::runtime_error("corpus.py did not start: '" + hello + "'");
    }
    ~Corpus() {
        close(toChild_);  // EOF on its stdin: it exits
        int st;
        for (int i = 0; i < 100 && waitpid(pid_, &st, WNOHANG) == 0; i++)
            std::this_thread::sleep_for(Millis(20));
        if (waitpid(pid_, &st, WNOHANG) == 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &st, 0);
        }
        close(fromChild_);
    }
    Corpus(const Corpus&) = delete;
    Corpus& operator=(const Corpus&) = delete;

    // Sends `count` copies of a shape from `src`; returns the frames sent.
    int send(const std::string& shape, int family, const std::string& src, int count) {
        std::string req = shape + " " + std::to_string(family) + " " + src + " " +
                          std::to_string(count) + "\n";
        if (write(toChild_, req.data(), req.size()) != ssize_t(req.size()))
            throw std::runtime_error("cannot write to corpus.py");
        std::string reply = readLine(kReplyLimit);
        std::istringstream r(reply);
        std::string word, gotShape, gotFamily, gotSrc;
        int copies = 0, frames = -1;
        r >> word >> gotShape >> gotFamily >> gotSrc >> copies >> frames;
        if (word != "sent" || gotShape != shape || copies != count || frames < 0)
            throw std::runtime_error("corpus.py: '" + reply + "' for " + req);
        return frames;
    }

private:
    std::string readLine(Millis limit) {
        std::string line;
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        for (;;) {
            size_t nl = buf_.find('\n');
            if (nl != std::string::npos) {
                line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return line;
            }
            int64_t left = (end - monoNs()) / 1'000'000;
            if (left <= 0)
                throw std::runtime_error("corpus.py: no reply in time");
            pollfd p = {fromChild_, POLLIN, 0};
            if (poll(&p, 1, int(left)) <= 0)
                continue;
            char chunk[512];
            ssize_t n = read(fromChild_, chunk, sizeof chunk);
            if (n <= 0)
                throw std::runtime_error("corpus.py exited");
            buf_.append(chunk, size_t(n));
        }
    }

    pid_t pid_ = -1;
    int toChild_ = -1, fromChild_ = -1;
    std::string buf_;
};

// sluice's counters of the interface, summed over policies, by verdict.
using Verdicts = std::map<uint32_t, uint64_t>;

// Tcp InSegs of the namespace: segments its TCP layer took in (v4 and v6).
uint64_t tcpInSegs(const Netns& ns) {
    return ns.run([] {
        std::ifstream in("/proc/thread-self/net/snmp");
        std::string line, names;
        while (std::getline(in, line)) {
            if (line.rfind("Tcp:", 0) != 0)
                continue;
            if (names.empty()) {
                names = line;
                continue;
            }
            std::istringstream n(names), v(line);
            std::string name, value;
            while (n >> name && v >> value)
                if (name == "InSegs")
                    return uint64_t(std::stoull(value));
        }
        throw std::runtime_error("no Tcp InSegs in /proc/net/snmp");
    });
}

// The receiver with sluice attached by the CLI, its sockets, and the corpus
// process: set up once for all rows (scapy is slow to start), torn down even
// when a row fails.
struct Bench {
    Testbed bed;
    Testbed::Link* link = nullptr;
    std::string iface, config, deniedSrc4, deniedSrc6, prefix4, prefix6;
    std::unique_ptr<UdpCounter> udp4, udp6;
    std::unique_ptr<Corpus> corpus;

    Bench() {
        link = &bed.addClient(1, 1);
        iface = link->receiverIf;
        prefix4 = link->receiver4.substr(0, link->receiver4.rfind('.') + 1);
        prefix6 = link->receiver6.substr(0, link->receiver6.rfind(':') + 1);
        deniedSrc4 = source(4, kDeniedHost);
        deniedSrc6 = source(6, kDeniedHost);
        config = "/tmp/sluice-bypass-" + bed.receiver().name() + ".toml";
        std::ofstream(config) << configText();
        registerPinDir(pinDirOf(iface));
        CmdResult r = sluice({"attach", iface, "--mode", "native", "--config", config});
        if (r.status != 0)
            throw std::runtime_error("sluice attach: " + r.out + r.err);
        udp4 = std::make_unique<UdpCounter>(bed.receiver(), link->receiver4, kUdpPort);
        udp6 = std::make_unique<UdpCounter>(bed.receiver(), link->receiver6, kUdpPort);
        corpus = std::make_unique<Corpus>(
            *link->client,
            std::vector<std::string>{"--iface", link->clientIf, "--src-mac",
                                     macOf(*link->client, link->clientIf), "--dst-mac",
                                     macOf(bed.receiver(), iface), "--dst4", link->receiver4,
                                     "--dst6", link->receiver6, "--udp-port",
                                     std::to_string(kUdpPort), "--tcp-port",
                                     std::to_string(kTcpPort)});
    }
    ~Bench() {
        corpus.reset();
        udp4.reset();
        udp6.reset();
        CmdResult r = sluice({"detach", iface});
        if (r.status != 0)
            std::fprintf(stderr, "[bypass] cleanup: sluice detach %s: %s\n", iface.c_str(),
                         r.err.c_str());
        runCmd({"rm", "-rf", pinDirOf(iface)});
        unregisterPinDir(pinDirOf(iface));
        unlink(config.c_str());
    }

    CmdResult sluice(const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"nsenter", "--net=" + bed.receiver().path(), sluiceBinary()};
        argv.insert(argv.end(), args.begin(), args.end());
        return runCmd(argv);
    }

    std::string configText() const {
        return "[sluice]\ninterfaces = [\"" + iface + "\"]\nmax_sources = 4096\n\n" +
               "[[deny]]\ncidr = \"" + deniedSrc4 + "/32\"\n\n" + "[[deny]]\ncidr = \"" +
               deniedSrc6 + "/128\"\n\n" +
               // ipv6_prefix 128: each shape's source gets its own buckets.
               "[[policy]]\nname = \"udp\"\nproto = \"udp\"\nports = [" +
               std::to_string(kUdpPort) +
               "]\npackets = \"5 per minute\"\nipv6_prefix = 128\naction = \"drop\"\n\n" +
               "[[policy]]\nname = \"tcp\"\nproto = \"tcp\"\nports = [" +
               std::to_string(kTcpPort) +
               "]\npackets = \"5 per minute\"\nipv6_prefix = 128\naction = \"drop\"\n";
    }

    std::string source(int family, int host) const {
        if (family == 4)
            return prefix4 + std::to_string(host);
        char hex[8];
        std::snprintf(hex, sizeof hex, "%x", host);
        return prefix6 + hex;
    }

    Verdicts verdicts() {
        auto slots = bed.receiver().run([&] { return sluice::Datapath::open(iface).counters(); });
        Verdicts v;
        for (const auto& s : slots)
            for (uint32_t i = 0; i < SLUICE_VERDICT_COUNT; i++)
                v[i] += s.verdicts[i].packets;
        return v;
    }
};

Bench* gBench = nullptr;

struct Case {
    Row row;
    bool denied;  // sent from the denied source
    int index;    // the row's place in kRows: its own source address
};

// Printed by gtest for a failing row, instead of the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) {
    *os << (c.denied ? "denied " : "") << c.row.shape << " IPv" << c.row.family;
}

std::string caseName(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    return std::string(c.denied ? "denied_" : "") + "v" + std::to_string(c.row.family) + "_" +
           c.row.shape;
}

std::vector<Case> cases(bool denied) {
    std::vector<Case> out;
    int i = 0;
    for (const Row& r : kRows)
        out.push_back({r, denied, i++});
    return out;
}

class Bypass : public testing::TestWithParam<Case> {
protected:
    static void SetUpTestSuite() {
        try {
            gBench = new Bench();
        } catch (const std::exception& e) {
            setupError_ = e.what();
        }
    }
    static void TearDownTestSuite() {
        delete gBench;
        gBench = nullptr;
    }
    void SetUp() override {
        if (!gBench)
            FAIL() << "bypass testbed: " << setupError_;
    }
    static std::string setupError_;
};
std::string Bypass::setupError_;

// The verdict deltas a send must produce, by the row's rule.
Verdicts expected(const Row& r, bool denied, int copies) {
    Verdicts e;
    e[SLUICE_VERDICT_MALFORMED] = uint64_t(r.malformed) * copies;
    e[SLUICE_VERDICT_FRAGMENT] = uint64_t(r.fragment) * copies;
    if (denied) {
        e[SLUICE_VERDICT_DENIED] = uint64_t(r.charged + r.passed) * copies;
        return e;
    }
    const uint64_t charged = uint64_t(r.charged) * copies;
    e[SLUICE_VERDICT_ADMITTED] = std::min<uint64_t>(charged, kBurst);
    e[SLUICE_VERDICT_LIMITED] = charged - e[SLUICE_VERDICT_ADMITTED];
    e[SLUICE_VERDICT_PASS] = uint64_t(r.passed) * copies;
    return e;
}

TEST_P(Bypass, ShapeKeepsItsRule) {
    const Case& c = GetParam();
    const Row& r = c.row;
    Bench& b = *gBench;
    const std::string src =
        c.denied ? (r.family == 4 ? b.deniedSrc4 : b.deniedSrc6) : b.source(r.family, kFirstSource + c.index);
    const int copies = c.denied ? kDeniedCopies : kCopies;
    SCOPED_TRACE(std::string(r.shape) + " IPv" + std::to_string(r.family) + " from " + src + ": " +
                 r.why);

    // The previous row collected its datagrams after a quiet period.
    const Verdicts before = b.verdicts();
    const uint64_t segsBefore = tcpInSegs(b.bed.receiver());

    const int frames = b.corpus->send(r.shape, r.family, src, copies);
    ASSERT_EQ(frames, r.frames() * copies) << "corpus.py and the table disagree on the shape";

    // Wait for the data path to count every frame; the ones it passes to the
    // stack reach the sockets right after.
    const Verdicts want = expected(r, c.denied, copies);
    Verdicts got;
    const int64_t end = monoNs() + int64_t(kCountLimit.count()) * 1'000'000;
    for (;;) {
        Verdicts now = b.verdicts();
        uint64_t seen = 0;
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
            got[v] = now[v] - before.at(v);
            // Stray frames of the link (IPv6 neighbour discovery, MLD) are
            // passed too: only the frames this row expects passed count.
            seen += v == SLUICE_VERDICT_PASS ? std::min(got[v], want.count(v) ? want.at(v) : 0)
                                             : got[v];
        }
        if (seen >= uint64_t(frames) || monoNs() > end)
            break;
        std::this_thread::sleep_for(Millis(20));
    }
    auto udp = (r.family == 4 ? b.udp4 : b.udp6)->collect(Millis(150), Millis(2000));
    auto udpOther = (r.family == 4 ? b.udp6 : b.udp4)->collect(Millis(0), Millis(0));
    const uint64_t segs = tcpInSegs(b.bed.receiver()) - segsBefore;

    // sluice's counters: exactly the rule's frames under the rule's verdicts.
    for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
        const uint64_t w = want.count(v) ? want.at(v) : 0;
        if (v == SLUICE_VERDICT_PASS)
            EXPECT_GE(got[v], w) << "verdict " << sluice::verdictName(v);
        else
            EXPECT_EQ(got[v], w) << "verdict " << sluice::verdictName(v);
    }

    // What reached the receiver: the burst of the charged frames at most,
    // exactly that when the stack takes the shape, nothing otherwise.
    int delivered = 0;
    if (!c.denied && r.charged > 0 && r.stack == Stack::Delivers)
        delivered = kBurst / r.charged;
    int udpTotal = 0;
    for (const auto& [from, n] : udp)
        udpTotal += n;
    EXPECT_TRUE(udpOther.empty()) << "datagrams on the other family's socket";
    if (r.l4 == L4::Udp) {
        EXPECT_EQ(udp[src], delivered) << "UDP datagrams read on port " << kUdpPort;
        EXPECT_EQ(udpTotal, udp[src]) << "datagrams from other sources";
        EXPECT_EQ(segs, 0u) << "TCP segments taken in";
    } else {
        EXPECT_EQ(segs, uint64_t(delivered)) << "TCP segments taken in (Tcp InSegs)";
        EXPECT_EQ(udpTotal, 0) << "UDP datagrams read";
    }
    EXPECT_LE(delivered, kBurst);
}

INSTANTIATE_TEST_SUITE_P(Corpus, Bypass, testing::ValuesIn(cases(false)), caseName);
INSTANTIATE_TEST_SUITE_P(Denied, Bypass, testing::ValuesIn(cases(true)), caseName);

// Every shape of corpus.py, in every family it exists in, has a row, and
// every row names a shape corpus.py has.
TEST(BypassCorpus, EveryShapeHasARow) {
    CmdResult r = runCmd({"/usr/bin/python3", corpusScript(), "--list"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::set<std::pair<std::string, int>> listed, rows;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream w(line);
        std::string shape;
        int family;
        w >> shape;
        while (w >> family)
            listed.insert({shape, family});
    }
    for (const Row& row : kRows)
        EXPECT_TRUE(rows.insert({row.shape, row.family}).second)
            << "two rows for " << row.shape << " IPv" << row.family;
    EXPECT_GE(listed.size(), 50u);
    EXPECT_EQ(listed, rows);
}

}  // namespace
