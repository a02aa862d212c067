// Line echo server: every line a client sends comes back (read_until + write), the server the
// echo benchmark measures.
//   echo_server PORT   serves on 127.0.0.1:PORT until killed (for anchors/run_echo_anchors.sh)
//   echo_server        serves on a free port, echoes three lines from its own client, exits
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/tcpserver.hpp>

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace tornado = boost::tornado;

static asio::awaitable<void> echo(tornado::IOStream stream, asio::ip::tcp::endpoint) {
  stream.set_nodelay(true);
  try {
    for (;;) {
      // Bounded, as a server facing untrusted peers should be: a line longer than 64 KiB
      // closes the connection instead of growing its buffer.
      std::string line = co_await stream.read_until("\n", 64 * 1024);
      co_await stream.write(std::move(line));
    }
  } catch (const tornado::StreamClosedError&) {
    // the client went away, or sent an overlong line
  }
}

static asio::awaitable<void> client(unsigned short port) {
  tornado::IOStream stream(co_await asio::this_coro::executor);
  co_await stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  for (const char* line : {"hello\n", "from the\n", "echo client\n"}) {
    co_await stream.write(std::string_view(line));
    std::string back = co_await stream.read_until("\n");
    std::printf("echoed: %s", back.c_str());
  }
}

int main(int argc, char** argv) try {
  tornado::IOLoop loop;
  tornado::TCPServer server(loop.get_executor(), echo);
  if (argc > 1) {
    const std::string_view arg = argv[argc - 1];
    unsigned short port = 0;
    auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), port);
    if (ec != std::errc() || end != arg.data() + arg.size() || port == 0) {
      std::fprintf(stderr, "usage: echo_server [PORT]  (PORT 1-65535, got \"%s\")\n", argv[argc - 1]);
      return 2;
    }
    server.listen(port, "127.0.0.1");
    loop.start();
    return 0;
  }
  server.listen(0, "127.0.0.1");
  loop.run_sync([&] { return client(server.endpoints().front().port()); });
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "echo_server: %s\n", e.what());
  return 1;
}
