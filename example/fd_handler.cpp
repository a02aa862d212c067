// Readiness handlers on raw file descriptors (a pipe): WRITE to send, READ level-triggered
// (called again while data remains), update_handler, the hang-up reported as READ|ERROR when
// the writer closes, and remove_handler.
#include <boost/tornado/ioloop.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using tornado::IOLoop;

static std::string event_names(int events) {
  std::string s;
  if (events & IOLoop::READ) s += "READ ";
  if (events & IOLoop::WRITE) s += "WRITE ";
  if (events & IOLoop::ERROR) s += "ERROR ";
  return s;
}

int main() try {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return 1;
  const int reader = fds[0], writer = fds[1];

  IOLoop loop;
  const std::string message = "hey";

  // The writer is ready at once; after one write it no longer asks for WRITE, otherwise the
  // level-triggered handler would be called on every loop iteration.
  loop.add_handler(writer, [&](int fd, int events) {
    std::printf("writer: %s-> writing \"%s\"\n", event_names(events).c_str(), message.c_str());
    if (::write(fd, message.data(), message.size()) < 0) std::perror("write");
    loop.update_handler(fd, IOLoop::NONE);
    // Closing the write end later makes the reader see end of file.
    loop.call_later(30ms, [&] {
      std::printf("closing the write end\n");
      loop.remove_handler(writer);
      ::close(writer);
    });
  }, IOLoop::WRITE);

  // One byte per call on purpose: the handler is called again while bytes remain.
  loop.add_handler(reader, [&](int fd, int events) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n == 1) {
      std::printf("reader: %s-> got '%c'\n", event_names(events).c_str(), c);
    } else if (n == 0) {
      std::printf("reader: %s-> end of file; removing the handler\n", event_names(events).c_str());
      loop.remove_handler(fd);
      ::close(fd);
      loop.stop();
    } else if (errno != EAGAIN) {
      std::perror("read");
      loop.stop();
    }
  }, IOLoop::READ | IOLoop::ERROR);

  // A safety net so the example always ends.
  loop.call_later(1s, [&] { loop.stop(); });
  loop.start();
  loop.close();
  std::printf("done\n");
} catch (const std::exception& e) {
  std::fprintf(stderr, "fd_handler: %s\n", e.what());
  return 1;
}
