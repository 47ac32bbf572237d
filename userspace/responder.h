// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The responder of action respond, run inside `sluice run`. Two listening
// sockets (127.0.0.1 and ::1) sit in each interface's sluice_responder map; an
// sk_lookup program (bpf/responder.bpf.c) attached to this network namespace
// hands it the connections the XDP program found over a respond policy's
// limit. Each gets `429 Too Many Requests` (ratelimit_response.h) and is
// closed. One thread, epoll, a fixed table of connections with fixed
// buffers and short deadlines: a flood of refused connections costs a
// bounded amount of memory and never a thread per connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice {

struct ResponderStats {
    uint64_t answered = 0;   // 429s sent for connections the data path handed over
    uint64_t unmatched = 0;  // 429s sent with no record (expired, or dialled directly)
    uint64_t timedOut = 0;   // closed at the deadline before a whole request arrived
    uint64_t errors = 0;     // accept/read/write failures
    uint64_t open = 0;       // connections held now (at most kMaxConnections)
};

class Responder {
public:
    static constexpr size_t kMaxConnections = 256;
    static constexpr size_t kRequestBytes = 2048;  // headers beyond this are not read
    static constexpr int kBacklog = 1024;
    // From accept to close, whatever the client does.
    static constexpr std::chrono::milliseconds kDeadline{2000};

    // Creates the socket and starts the thread. Throws when the socket
    // cannot be set up.
    Responder();
    ~Responder();
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;

    // Steers IFACE's handed-over connections here: loads the sk_lookup
    // program against IFACE's pinned maps, attaches it to this network
    // namespace and puts the socket into IFACE's sluice_responder map.
    // Throws (and changes nothing) on failure.
    void addInterface(const std::string& iface);
    // Stops doing so (the map entry stays until the socket closes; the
    // program is detached, so no new connection is steered).
    void removeInterface(const std::string& iface);
    std::vector<std::string> interfaces() const;

    ResponderStats stats() const;
    uint16_t port4() const;  // the sockets' own ports on 127.0.0.1 and ::1
    uint16_t port6() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
