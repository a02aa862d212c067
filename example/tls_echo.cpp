// A TLS line echo server and its client in one program (TCPServer with an ssl::context,
// TCPClient::connect with one). The program makes a throwaway self-signed certificate for
// "localhost" with the `openssl` command in a temporary directory, serves TLS with it, connects
// with a client that trusts exactly that certificate (and checks that it names the host), echoes
// a few lines, shows that a client trusting only the system's CAs is refused, and that the
// trusted certificate is refused under another name, cleans up and exits.
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/netutil.hpp>
#include <boost/tornado/tcpclient.hpp>
#include <boost/tornado/tcpserver.hpp>

#include <boost/asio/this_coro.hpp>
#include <openssl/x509_vfy.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using asio::ip::tcp;

// A temporary directory holding cert.pem and key.pem, removed by the destructor.
struct throwaway_certificate {
  std::filesystem::path dir;

  throwaway_certificate() {
    char tmpl[] = "/tmp/tls_echo.XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    // An EC key is made in milliseconds; the names cover both ways the client may reach us.
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                            " -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
                            " -keyout " + key() + " -out " + cert() + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::filesystem::remove_all(dir);
      throw std::runtime_error("could not run `openssl req` (is the openssl command installed?)");
    }
  }
  ~throwaway_certificate() {
    std::error_code ignored;  // a destructor must not throw
    std::filesystem::remove_all(dir, ignored);
  }
  std::string cert() const { return (dir / "cert.pem").string(); }
  std::string key() const { return (dir / "key.pem").string(); }
};

// The server's handler: TCPServer hands over an SSLIOStream whose handshake is under way; the
// first read waits for it.
static asio::awaitable<void> echo(tornado::SSLIOStream stream, tcp::endpoint peer) {
  try {
    for (;;) {
      std::string line = co_await stream.read_until("\n", 4096);
      co_await stream.write(std::move(line));
    }
  } catch (const tornado::StreamClosedError& e) {
    // SSLIOStream::close() sends no close_notify (neither does Tornado), so the peer's close
    // shows as stream_truncated; a failed handshake shows the TLS error.
    const auto& why = e.real_error();
    if (!why || why == asio::ssl::error::stream_truncated)
      std::printf("[server] %s went away\n", peer.address().to_string().c_str());
    else
      std::printf("[server] %s: %s\n", peer.address().to_string().c_str(), why.message().c_str());
  }
}

static asio::awaitable<void> client(unsigned short port, asio::ssl::context& trusting_us) {
  tornado::TCPClient client(co_await asio::this_coro::executor);
  tornado::connect_options options;
  options.timeout = 5s;  // resolution, connection and handshake together

  // Verifies the chain against the CA file and the name "localhost" (also sent as SNI).
  tornado::SSLIOStream stream = co_await client.connect("localhost", port, trusting_us, options);
  std::printf("connected to %s over %s\n", stream.socket().lowest_layer().remote_endpoint().address().to_string().c_str(),
              SSL_get_version(stream.socket().native_handle()));
  for (const char* line : {"hello\n", "over TLS\n", "bye\n"}) {
    co_await stream.write(std::string_view(line));
    std::string back = co_await stream.read_until("\n");
    std::printf("echoed: %s", back.c_str());
  }
  stream.close();

  // The system's CAs do not know our certificate: the handshake fails, and the connect throws
  // StreamClosedError whose real_error() is the verification failure.
  asio::ssl::context system_cas = tornado::ssl_default_client_context();
  try {
    co_await client.connect("localhost", port, system_cas, options);
    throw std::runtime_error("an untrusted certificate was accepted");
  } catch (const tornado::StreamClosedError& e) {
    // real_error() says why: {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, certificate_category()}.
    std::printf("a client trusting only the system's CAs is refused: %s\n", e.real_error().message().c_str());
  }

  // Trusted, but reached under a name it does not carry: refused for the name, a reason of its
  // own (X509_V_ERR_HOSTNAME_MISMATCH).
  tornado::SSLIOStream elsewhere(tcp::socket(co_await asio::this_coro::executor), trusting_us);
  try {
    co_await elsewhere.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), "example.com");
    throw std::runtime_error("a certificate for another name was accepted");
  } catch (const tornado::StreamClosedError& e) {
    if (e.real_error() != boost::system::error_code(X509_V_ERR_HOSTNAME_MISMATCH, tornado::certificate_category()))
      throw;
    std::printf("the same certificate, expected to be example.com's: %s\n", e.real_error().message().c_str());
  }
}

int main() {
  try {
    throwaway_certificate certificate;
    asio::ssl::context server_context = tornado::ssl_default_server_context(certificate.cert(), certificate.key());
    tornado::ssl_options client_options;
    client_options.ca_certs = certificate.cert();  // trust this certificate alone
    asio::ssl::context client_context = tornado::ssl_options_to_context(client_options, /*server_side=*/false);

    tornado::IOLoop loop;
    tornado::TCPServer server(loop.get_executor(), echo, server_context);
    server.listen(0, "localhost");  // 127.0.0.1, and ::1 where the system has it
    const unsigned short port = server.endpoints().front().port();
    std::printf("TLS echo server on localhost:%u\n", unsigned(port));
    loop.run_sync([&] { return client(port, client_context); }, 10s);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_echo: %s\n", e.what());
    return 1;
  }
}
