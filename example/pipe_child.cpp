// PipeIOStream talking to child processes through pipes (tornado.iostream.PipeIOStream; Tornado's
// tornado.process.Subprocess is built the same way). The program forks and execs two children:
//   /bin/cat          a line written to its stdin comes back on its stdout: lines go back and
//                     forth one at a time, then closing its stdin ends it and read_until_close
//                     collects what is left;
//   tr a-z A-Z        fed a text larger than the pipes hold, written and read back at the same
//                     time.
// Then it reaps the children and exits.
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/locks.hpp>

#include <boost/asio/this_coro.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;

// A child process with its stdin and stdout connected to the two streams.
struct Child {
  pid_t pid;
  tornado::PipeIOStream stdin_;   // we write, the child reads
  tornado::PipeIOStream stdout_;  // the child writes, we read

  // Waits for the child to exit and returns its exit status. Called once its stdout reached
  // end of file, so the wait is short.
  int wait() const {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

static Child spawn(const asio::any_io_executor& ex, const char* file, char* const argv[]) {
  int in[2] = {-1, -1}, out[2] = {-1, -1};
  // On failure nothing is left open (errno is taken before close() can change it).
  auto fail = [&](const char* what) {
    const int err = errno;
    for (int fd : {in[0], in[1], out[0], out[1]})
      if (fd >= 0) ::close(fd);
    throw std::system_error(err, std::generic_category(), what);
  };
  // O_CLOEXEC: a child must not inherit the pipe ends meant for another child (a `cat` holding
  // the write end of its own stdin would never see end of file).
  if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0) fail("pipe2");
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec. dup2 clears FD_CLOEXEC on 0 and 1.
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    // PipeIOStream makes this process ignore SIGPIPE, and an ignored signal stays ignored
    // across exec: give the child the default back, as Python's subprocess does.
    ::signal(SIGPIPE, SIG_DFL);
    ::execvp(file, argv);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  // The streams own the descriptors from here on and close them.
  return Child{pid, tornado::PipeIOStream(ex, in[1]), tornado::PipeIOStream(ex, out[0])};
}

static asio::awaitable<void> talk_to_cat() {
  char* const argv[] = {const_cast<char*>("cat"), nullptr};
  Child cat = spawn(co_await asio::this_coro::executor, "/bin/cat", argv);
  for (const char* line : {"one\n", "two\n", "three\n"}) {
    co_await cat.stdin_.write(std::string_view(line));
    std::string back = co_await cat.stdout_.read_until("\n");
    std::printf("cat echoed: %s", back.c_str());
  }
  co_await cat.stdin_.write(std::string_view("no newline at the end"));
  cat.stdin_.close();  // end of file for cat, which writes what it has and exits
  std::string rest = co_await cat.stdout_.read_until_close();
  std::printf("cat's last words: \"%s\"\n", rest.c_str());
  std::printf("cat exited with status %d\n", cat.wait());
}

static asio::awaitable<void> shout_with_tr() {
  char* const argv[] = {const_cast<char*>("tr"), const_cast<char*>("a-z"), const_cast<char*>("A-Z"), nullptr};
  // Shared with the write's callback below, which may run after this frame is gone.
  auto tr = std::make_shared<Child>(spawn(co_await asio::this_coro::executor, "tr", argv));
  std::string text;
  for (int i = 1; i <= 5000; ++i) text += "line " + std::to_string(i) + " of a quiet text\n";
  const std::size_t size = text.size();  // ~130 KB: more than the pipes hold
  // Write and read at the same time, or each side could wait for the other once the pipes are
  // full. A write with a callback token starts at once (the default token's awaitable would
  // wait for co_await); its callback closes tr's stdin once every byte has gone into the pipe.
  // The callback owns a share of the child and of `fed`: if this frame ends first (cancelled
  // while reading, say), it still finds them. Normally the frame waits for it (`fed`), also
  // when tr exits early and the callback comes after its output has ended.
  auto fed = std::make_shared<tornado::Event>();
  tr->stdin_.write(std::move(text), [tr, fed](boost::system::error_code ec) {
    if (ec) std::printf("write to tr failed: %s\n", ec.message().c_str());
    tr->stdin_.close();
    fed->set();
  });
  std::string shouted = co_await tr->stdout_.read_until_close();
  co_await fed->wait();
  std::printf("tr answered %zu bytes of %zu, starting with: %s", shouted.size(), size,
              shouted.substr(0, shouted.find('\n') + 1).c_str());
  std::printf("tr exited with status %d\n", tr->wait());
}

int main() try {
  tornado::IOLoop loop;
  loop.run_sync(
      []() -> asio::awaitable<void> {
        co_await talk_to_cat();
        co_await shout_with_tr();
      },
      10s);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pipe_child: %s\n", e.what());
  return 1;
}
