// Line echo server: every line a client sends comes back (read_until + write), the server the
// echo benchmark measures.
//   echo_server PORT   serves on 127.0.0.1:PORT until killed (for anchors/run_echo_anchors.sh)
//   echo_server        serves on a free port, echoes three lines from its own client, exits
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/tcpserver.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
namespace tornado = boost::tornado;

static asio::awaitable<void> echo(tornado::IOStream stream, asio::ip::tcp::endpoint) {
  stream.set_nodelay(true);
  try {
    for (;;) {
      std::string line = co_await stream.read_until("\n");
      co_await stream.write(std::move(line));
    }
  } catch (const tornado::StreamClosedError&) {
    // the client went away
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

int main(int argc, char** argv) {
  tornado::IOLoop loop;
  tornado::TCPServer server(loop.get_executor(), echo);
  if (argc > 1) {
    server.listen(static_cast<unsigned short>(std::atoi(argv[argc - 1])), "127.0.0.1");
    loop.start();
    return 0;
  }
  server.listen(0, "127.0.0.1");
  loop.run_sync([&] { return client(server.endpoints().front().port()); });
  return 0;
}
