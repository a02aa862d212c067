// Stream reads in bulk and long lines:
//  - bulk transfer over loopback TCP: read_bytes(1 MiB) against raw asio::async_read of the same
//    size into a reused buffer, taking turns read by read on the same connection (the writer,
//    raw Asio, runs on another thread, pinned to the other CPU): MB/s of the reads' wall time
//    and of the reading thread's CPU time;
//  - one long line arriving in chunks of 1 B to 4 KiB, read with read_until("\n") and with
//    read_until_regex("\n"), against asio::async_read_until: ms for 1, 4 and 16 MiB lines (time
//    per MiB staying flat shows the search resumes instead of rescanning).
#include <boost/tornado/iostream.hpp>

#include "bench.hpp"

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

static double thread_cpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- bulk ----

// Writes `total` bytes to a fresh loopback connection from another thread; returns the reading
// end, connected.
struct bulk_source {
  asio::io_context writer_ctx{1};
  std::thread writer;
  bulk_source(tcp::socket& reader, std::size_t total) {
    tcp::acceptor acc(reader.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto ep = acc.local_endpoint();
    writer = std::thread([ep, total] {
      bench::pin(1);
      asio::io_context ctx(1);
      tcp::socket s(ctx);
      s.open(tcp::v4());
      s.set_option(asio::socket_base::send_buffer_size(socket_buffer));
      s.connect(ep);
      std::vector<char> chunk(256 * 1024, 'b');
      for (std::size_t sent = 0; sent < total;) {
        std::size_t n = std::min(chunk.size(), total - sent);
        asio::write(s, asio::buffer(chunk.data(), n));
        sent += n;
      }
    });
    acc.accept(reader);
    reader.set_option(asio::socket_base::receive_buffer_size(socket_buffer));
  }
  // Fixed socket buffers: left to autotuning, each connection settles on its own window and
  // the runs differ by 3x whichever side reads.
  static constexpr int socket_buffer = 4 * 1024 * 1024;
  ~bulk_source() { writer.join(); }
};

// One connection read 1 MiB at a time, the reads taking turns between the stream's read_bytes
// and raw async_read on the stream's own socket (the stream's buffer is empty between reads).
// Why turns and not one connection each: on this kind of machine the same connection's
// throughput swings between about 2 and 8 GB/s in spells of tens of milliseconds, whoever
// reads. Runs of their own then compare the spells each side happened to get; reads taking
// turns meet the same spells.
struct bulk_totals {
  double wall[2] = {0, 0}, cpu[2] = {0, 0};
  std::size_t bytes[2] = {0, 0};
};

static void bulk_connection(std::size_t total, std::size_t chunk, bulk_totals& t) {
  asio::io_context ctx(1);
  tcp::socket sock(ctx);
  bulk_source src(sock, total);
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    tornado::IOStream stream(std::move(sock));
    std::vector<char> buf(chunk);
    std::size_t got = 0;
    for (int turn = 0; got < total; turn ^= 1) {
      std::size_t n = std::min(chunk, total - got);
      double t0 = now(), c0 = thread_cpu();
      if (turn == 0) {
        std::string data = co_await stream.read_bytes(n);
        n = data.size();
      } else {
        n = co_await asio::async_read(stream.socket(), asio::buffer(buf.data(), n), asio::use_awaitable);
      }
      t.wall[turn] += now() - t0;
      t.cpu[turn] += thread_cpu() - c0;
      t.bytes[turn] += n;
      got += n;
    }
  }, asio::detached);
  ctx.run();
}

// ---- long lines ----

// Sends a line of `size` bytes (newline included) in chunks of 1 B to 4 KiB from another thread.
static std::thread send_line(local::socket& s, std::size_t size) {
  return std::thread([&s, size] {
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::size_t> len(1, 4096);
    std::string chunk(4096, 'a');
    for (std::size_t sent = 0; sent + 1 < size;) {
      std::size_t n = std::min(len(rng), size - 1 - sent);
      asio::write(s, asio::buffer(chunk.data(), n));
      sent += n;
    }
    asio::write(s, asio::buffer("\n", 1));
  });
}

enum class line_reader { delimiter, regex, raw };

static double line_ms(line_reader how, std::size_t size) {
  asio::io_context ctx(1);
  local::socket a(ctx), b(ctx);
  asio::local::connect_pair(a, b);
  std::size_t got = 0;
  double t0 = now();
  std::thread writer = send_line(b, size);
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    if (how == line_reader::raw) {
      std::string buf;
      got = co_await asio::async_read_until(a, asio::dynamic_buffer(buf), '\n', asio::use_awaitable);
      co_return;
    }
    tornado::LocalIOStream stream(std::move(a));
    // (No co_await inside ?: -- GCC 12 destroys such a temporary twice.)
    std::string line;
    if (how == line_reader::delimiter)
      line = co_await stream.read_until("\n");
    else
      line = co_await stream.read_until_regex(boost::regex("\n"));
    got = line.size();
  }, asio::detached);
  ctx.run();
  double ms = (now() - t0) * 1e3;
  writer.join();
  if (got != size) std::printf("line of %zu read as %zu\n", size, got);
  return ms;
}

int main() {
  const std::size_t total = std::size_t(512 * bench::scale()) * 1024 * 1024;
  const std::size_t chunk = 1024 * 1024;
  // The reader here on CPU 0, the writer on CPU 1: a shared core would measure the scheduler.
  bench::pin(0);
  // A few connections, so that no one connection's settling decides the figure.
  bulk_totals t;
  for (int c = 0; c < 4; ++c) {
    bulk_totals one;
    bulk_connection(total, chunk, one);
    if (std::getenv("BENCH_VERBOSE"))
      std::printf("  connection %d: ours %.0f MB/s %.0f MB/cpu-s, raw %.0f MB/s %.0f MB/cpu-s\n", c,
                  one.bytes[0] / one.wall[0] / 1e6, one.bytes[0] / one.cpu[0] / 1e6, one.bytes[1] / one.wall[1] / 1e6,
                  one.bytes[1] / one.cpu[1] / 1e6);
    for (int k = 0; k < 2; ++k) t.wall[k] += one.wall[k], t.cpu[k] += one.cpu[k], t.bytes[k] += one.bytes[k];
  }
  bench::report("bulk_read_bytes_1MiB", t.bytes[0] / t.wall[0] / 1e6, "raw_asio_async_read", t.bytes[1] / t.wall[1] / 1e6,
                "MB/s");
  // Per second of the reader's CPU: what the reading side costs, whatever the writer did.
  bench::report("bulk_read_bytes_1MiB_reader_cpu", t.bytes[0] / t.cpu[0] / 1e6, "raw_asio_async_read",
                t.bytes[1] / t.cpu[1] / 1e6, "MB/cpu-s");

  for (std::size_t mib : {1, 4, 16}) {
    double d = 1e300, x = 1e300, w = 1e300;
    for (int r = 0; r < 3; ++r) {
      d = std::min(d, line_ms(line_reader::delimiter, mib << 20));
      x = std::min(x, line_ms(line_reader::regex, mib << 20));
      w = std::min(w, line_ms(line_reader::raw, mib << 20));
    }
    std::string name = "line_" + std::to_string(mib) + "MiB_read_until";
    bench::report(name.c_str(), d, "raw_asio_async_read_until", w, "ms");
    name = "line_" + std::to_string(mib) + "MiB_read_until_regex";
    bench::report(name.c_str(), x, "raw_asio_async_read_until", w, "ms");
  }
  return 0;
}
