// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the fuzz harnesses share: a failed invariant aborts with a message,
// which libFuzzer reports as a crash and saves the input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "error.h"

namespace sluice::fuzz {

[[noreturn]] inline void violated(const std::string& what, const std::string& input)
{
    std::fprintf(stderr, "fuzz invariant violated: %s\ninput: '%s'\n", what.c_str(), input.c_str());
    std::abort();
}

inline void require(bool ok, const std::string& what, const std::string& input)
{
    if (!ok)
        violated(what, input);
}

// Runs `fn` on `input`: it returns normally (true), or throws sluice::Error
// of kind Usage (false) whose message starts with `location` ("FILE:"),
// never any other exception: the CLI prints sluice::Error and nothing else.
template <typename Fn>
bool acceptsOrRefuses(const Fn& fn, const std::string& input, const std::string& location,
                      std::string* message = nullptr)
{
    try {
        fn();
        return true;
    } catch (const Error& e) {
        std::string m = e.what();
        require(e.kind() == ErrorKind::Usage, "bad input raised a Runtime error: " + m, input);
        require(m.rfind(location, 0) == 0, "the message does not start with '" + location + "': " + m,
                input);
        if (message)
            *message = m;
        return false;
    } catch (const std::exception& e) {
        violated(std::string("threw something other than sluice::Error: ") + e.what(), input);
    } catch (...) {
        violated("threw something that is not a std::exception", input);
    }
}

}  // namespace sluice::fuzz
