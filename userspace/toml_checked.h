// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// toml++, with its internal checks turned into an exception. Every file that
// uses toml++ includes it through here, so that all of them see one
// definition of its inline functions.
//
// Why: Debian's toml++ 3.3 enters parse_key() with a character that cannot
// start a key on malformed table headers ("[&", "[[[1]]]", "[!\0"), which
// trips its assert() and aborts the process (the CLI and `sluice run` died
// on such a file instead of reporting it); under NDEBUG the same assert is
// an assumption, i.e. undefined behaviour (upstream issue marzer/tomlplusplus
// #294, fixed after 3.3). Found by tests/fuzz/config_fuzz. Here a failed
// check throws TomlCheckFailed, whatever NDEBUG says, and the config parser
// reports it as a usage error like any other parse error.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice {

class TomlCheckFailed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// A call rather than a throw expression: some of toml++'s checks sit in
// noexcept functions, where a failure still ends the process (none of those
// is known to trip).
[[noreturn]] inline void tomlCheckFailed(const char* check)
{
    throw TomlCheckFailed(check);
}

}  // namespace sluice

#pragma push_macro("NDEBUG")
#undef NDEBUG
#undef TOML_ASSERT
#define TOML_ASSERT(expr) ((expr) ? static_cast<void>(0) : ::sluice::tomlCheckFailed(#expr))
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")
