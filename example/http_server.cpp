// A tiny HTTP/1.1 server: TCPServer and IOStream carry the bytes, Boost.Beast parses and
// serializes the messages. The request head is read with read_until("\r\n\r\n") (bounded, so a
// client cannot make the server buffer an endless header), fed to beast::http::request_parser,
// and the body with read_bytes(Content-Length). The response is a beast::http::response
// serialized by Beast's serializer (operator<<). Connections are kept alive between requests
// unless the client says "Connection: close".
//
// The program serves on a free port, sends one POST from its own client (a plain IOStream),
// prints the response and exits.
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/tcpserver.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <sstream>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using asio::ip::tcp;

constexpr std::size_t max_header = 16 * 1024;
constexpr std::size_t max_body = 1024 * 1024;

// Reads one request; nullopt when the client closed the connection between requests. A
// malformed request throws beast's system_error.
static asio::awaitable<std::optional<http::request<http::string_body>>> read_request(tornado::IOStream& stream) {
  std::string head;
  try {
    head = co_await stream.read_until("\r\n\r\n", max_header);
  } catch (const tornado::StreamClosedError& e) {
    if (e.real_error() == tornado::error::unsatisfiable_read)  // the stream is closed already
      std::puts("[server] request header too large, connection closed");
    co_return std::nullopt;
  }
  http::request_parser<http::string_body> parser;
  parser.header_limit(max_header);
  parser.body_limit(max_body);
  beast::error_code ec;
  parser.put(asio::buffer(head), ec);  // the complete head: the parser stops after it
  if (ec) throw beast::system_error(ec);
  if (parser.chunked()) throw beast::system_error(http::error::bad_transfer_encoding);  // not in this tiny server
  if (!parser.is_done()) {
    const std::uint64_t length = parser.content_length().value_or(0);
    if (length > max_body) throw beast::system_error(http::error::body_limit);
    std::string body = co_await stream.read_bytes(static_cast<std::size_t>(length));
    parser.put(asio::buffer(body), ec);
    if (ec) throw beast::system_error(ec);
  }
  co_return parser.release();
}

// Beast's serializer. The answer to a HEAD request is the header a GET would get, without
// the body (RFC 9110, 9.3.2): a body there would be read as the start of the next response.
static std::string serialize(const http::response<http::string_body>& res, bool head = false) {
  std::ostringstream out;
  if (head) out << res.base();
  else out << res;
  return std::move(out).str();
}

static http::response<http::string_body> handle(const http::request<http::string_body>& req) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.set(http::field::server, "Boost.Tornado example");
  res.set(http::field::content_type, "text/plain");
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  if (get && req.target() == "/") {
    res.result(http::status::ok);
    res.body() = "Hello, world\n";
  } else if (req.method() == http::verb::post && req.target() == "/echo") {
    res.result(http::status::ok);
    res.body() = "you sent " + std::to_string(req.body().size()) + " bytes: " + req.body() + "\n";
  } else {
    res.result(http::status::not_found);
    res.body() = "no such page\n";
  }
  res.keep_alive(req.keep_alive());
  res.prepare_payload();  // Content-Length
  return res;
}

// TCPServer's handler: requests one after the other on the connection.
static asio::awaitable<void> serve(tornado::IOStream stream, tcp::endpoint peer) {
  std::string bad_request;
  try {
    for (;;) {
      std::optional<http::request<http::string_body>> req = co_await read_request(stream);
      if (!req) co_return;  // the client closed the connection
      std::printf("[server] %s %s from %s\n", std::string(req->method_string()).c_str(),
                  std::string(req->target()).c_str(), peer.address().to_string().c_str());
      http::response<http::string_body> res = handle(*req);
      co_await stream.write(serialize(res, req->method() == http::verb::head));  // taken over, not copied
      if (!res.keep_alive()) co_return;       // destroying the stream closes it; nothing is lost:
                                              // the write completed, the bytes are the kernel's
    }
  } catch (const tornado::StreamClosedError&) {
    co_return;  // the client went away in the middle of a request
  } catch (const beast::system_error& e) {
    bad_request = e.code().message();  // no co_await inside a handler: answer below
  }
  std::printf("[server] bad request: %s\n", bad_request.c_str());
  http::response<http::string_body> res{http::status::bad_request, 11};
  res.set(http::field::connection, "close");
  res.body() = bad_request + "\n";
  res.prepare_payload();
  try {
    co_await stream.write(serialize(res));
  } catch (const tornado::StreamClosedError&) {
    // the client did not wait for the answer
  }
}

static asio::awaitable<void> client(unsigned short port) {
  tornado::IOStream stream(co_await asio::this_coro::executor);
  co_await stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  // Two requests in one write: a HEAD, whose answer has no body, then the POST.
  co_await stream.write(std::string_view("HEAD / HTTP/1.1\r\n"
                                         "Host: 127.0.0.1\r\n"
                                         "\r\n"
                                         "POST /echo HTTP/1.1\r\n"
                                         "Host: 127.0.0.1\r\n"
                                         "Content-Type: text/plain\r\n"
                                         "Content-Length: 11\r\n"
                                         "Connection: close\r\n"
                                         "\r\n"
                                         "hello world"));
  std::string responses = co_await stream.read_until_close();  // "Connection: close"
  std::printf("--- responses ---\n%s", responses.c_str());
}

int main() try {
  tornado::IOLoop loop;
  tornado::TCPServer server(loop.get_executor(), serve);
  server.listen(0, "127.0.0.1");
  loop.run_sync([&] { return client(server.endpoints().front().port()); }, 10s);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "http_server: %s\n", e.what());
  return 1;
}
