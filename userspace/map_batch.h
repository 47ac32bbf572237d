// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Walks a BPF hash map in chunks with BPF_MAP_LOOKUP_BATCH, falling back to
// key-by-key iteration on kernels without batch ops for the map type. Used
// for the per-source table (`sluice top`, metrics) and the fleet units map.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "error.h"

namespace sluice {

// Calls f(keys, values, count) for every chunk of the map behind fd. The map
// keeps changing meanwhile: an entry inserted or evicted during the walk may
// be missed or seen, as with get_next_key. Throws naming `what` on failure.
template <typename Key, typename Value, typename F>
void forEachBatch(int fd, const std::string& what, F f)
{
    uint32_t chunk = 16384;
    std::vector<Key> keys(chunk);
    std::vector<Value> values(chunk);
    uint32_t inBatch = 0, outBatch = 0;
    bool first = true;
    for (;;) {
        uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &inBatch, &outBatch, keys.data(), values.data(),
                                       &count, nullptr);
        if (err == -ENOSPC && count == 0) {
            // One hash bucket holds more than a chunk: grow and retry.
            chunk *= 2;
            keys.resize(chunk);
            values.resize(chunk);
            continue;
        }
        if (err && err != -ENOENT) {
            if (first && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP || err == -524)) {
                // No batch ops here: key by key.
                Key key{}, next{};
                int e = bpf_map_get_next_key(fd, nullptr, &next);
                while (!e) {
                    Value v{};
                    if (bpf_map_lookup_elem(fd, &next, &v) == 0)
                        f(&next, &v, 1u);
                    key = next;
                    e = bpf_map_get_next_key(fd, &key, &next);
                }
                return;
            }
            throwSys("cannot read " + what, err);
        }
        if (count)
            f(keys.data(), values.data(), count);
        if (err == -ENOENT)
            return;
        inBatch = outBatch;
        first = false;
    }
}

}  // namespace sluice
