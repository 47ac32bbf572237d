// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Errors carry their context up to the one place that prints them (the CLI's
// main, a test's failure message). Which kind decides the exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice {

enum class ErrorKind {
    Runtime,  // the system refused or failed: exit 1
    Usage,    // bad input from the user (arguments, config): exit 2
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message)
        : std::runtime_error(message), kind_(kind) {}

    ErrorKind kind() const { return kind_; }
    int exitCode() const { return kind_ == ErrorKind::Usage ? 2 : 1; }

private:
    ErrorKind kind_;
};

// "what: strerror(-err)" for a libbpf-style negative errno.
std::string errnoText(int err);

[[noreturn]] void throwRuntime(const std::string& message);
[[noreturn]] void throwUsage(const std::string& message);
// A libbpf 1.x call failed with negative errno `err`.
[[noreturn]] void throwSys(const std::string& what, int err);

}  // namespace sluice
