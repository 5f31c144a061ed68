// Death tests: run a piece of a test in a forked child, stderr captured, and
// learn how the child ended (the checks under test abort the process).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "catch.hpp"

namespace test_support {

/// How a child process ended and what it wrote to stderr.
struct ChildResult {
  bool aborted = false;  // killed by SIGABRT
  bool exited_ok = false;
  std::string err;
};

/// Runs `body` in a forked child with stderr captured (stdout discarded);
/// the parent reaps it by its PID and gets how it ended.
template <class Body>
ChildResult in_child(Body body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child dies by the check under test: not by Catch's handler, and
    // without Catch's output.
    std::signal(SIGABRT, SIG_DFL);
    if (std::FILE* devnull = std::fopen("/dev/null", "w")) ::dup2(::fileno(devnull), STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    body();
    std::_Exit(0);
  }
  ::close(fds[1]);
  ChildResult r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.err.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  r.exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

}  // namespace test_support
