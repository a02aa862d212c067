// A line chat server (tornado.tcpserver + tornado.iostream): the first line a client sends is
// its name, every later line goes to the other clients as "name: line". Each member has an
// outbox, a bounded Queue drained by its own writer coroutine, so a slow client never holds up
// the others, and one that stops reading is disconnected when its outbox fills instead of
// growing the server's memory; a Condition tells whoever waits that somebody joined or left.
//
// The program starts the server on a free port, connects three clients of its own with
// TCPClient, lets them talk, disconnects them and exits.
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/queues.hpp>
#include <boost/tornado/tcpclient.hpp>
#include <boost/tornado/tcpserver.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdio>
#include <list>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using asio::ip::tcp;
using tornado::IOStream;

class ChatRoom {
public:
  // TCPServer's handler: one coroutine per connection.
  asio::awaitable<void> serve(IOStream stream, tcp::endpoint peer) {
    ++connections_;
    Member me(stream);
    try {
      me.name = co_await stream.read_until("\n", 64);  // a longer name closes the connection
      me.name.pop_back();
    } catch (const tornado::StreamClosedError&) {
      leave_connection();
      co_return;
    }
    std::printf("[server] %s joined from %s\n", me.name.c_str(), peer.address().to_string().c_str());
    broadcast("* " + me.name + " joined\n", &me);
    members_.push_back(&me);
    asio::co_spawn(co_await asio::this_coro::executor, write_loop(me), asio::detached);
    changed_.notify_all();

    try {
      for (;;) {
        std::string line = co_await stream.read_until("\n", 1024);
        broadcast(me.name + ": " + line, &me);
      }
    } catch (const tornado::StreamClosedError& e) {
      // The client went away (an empty real_error() is a clean close), or sent a line longer
      // than 1024 bytes (real_error() == tornado::error::unsatisfiable_read).
      if (e.real_error()) std::printf("[server] %s: %s\n", me.name.c_str(), e.real_error().message().c_str());
    }

    members_.remove(&me);
    std::printf("[server] %s left\n", me.name.c_str());
    broadcast("* " + me.name + " left\n", nullptr);
    // Stops the writer, which uses `me` and `stream`: wait for it. The stream is closed, so the
    // writer drains a full outbox at once and the put finds room.
    co_await me.outbox.put("");
    co_await me.writer_done.wait();
    leave_connection();
  }

  // Waits until `n` members are in the room (TimeoutError after two seconds).
  asio::awaitable<void> wait_for_members(std::size_t n) {
    while (members_.size() != n) {
      bool notified = co_await changed_.wait(2s);
      if (!notified) throw tornado::TimeoutError("room never reached the expected size");
    }
  }

  // Waits until every connection handler has finished.
  asio::awaitable<void> wait_until_empty() {
    while (connections_ != 0) {
      bool notified = co_await changed_.wait(2s);
      if (!notified) throw tornado::TimeoutError("connections still open");
    }
  }

private:
  struct Member {
    explicit Member(IOStream& s) : stream(s) {}
    IOStream& stream;
    std::string name;
    tornado::Queue<std::string> outbox{max_outbox};  // an empty string stops the writer
    tornado::Event writer_done;
  };

  // Sends what the member's outbox receives, in order; one write at a time.
  static asio::awaitable<void> write_loop(Member& m) {
    for (;;) {
      std::string line = co_await m.outbox.get();
      if (line.empty()) break;
      try {
        co_await m.stream.write(std::move(line));
      } catch (const tornado::StreamClosedError&) {
        // Closed under us: keep draining until the stop signal.
      }
    }
    m.writer_done.set();
  }

  // A member whose outbox is full has stopped reading: it is disconnected (its serve() then
  // sees its stream closed and leaves) rather than queued for without end.
  void broadcast(const std::string& line, const Member* from) {
    for (Member* m : members_) {
      if (m == from || m->stream.closed()) continue;
      if (m->outbox.full()) {
        std::printf("[server] %s is not reading: disconnected\n", m->name.c_str());
        m->stream.close();
        continue;
      }
      m->outbox.put_nowait(line);
    }
  }

  void leave_connection() {
    --connections_;
    changed_.notify_all();
  }

  static constexpr int max_outbox = 1000;  // lines waiting for one member
  std::list<Member*> members_;
  std::size_t connections_ = 0;
  tornado::Condition changed_;
};

// ---- the program's own clients ----

static asio::awaitable<IOStream> join(ChatRoom& room, unsigned short port, std::string name, std::size_t members) {
  tornado::TCPClient client(co_await asio::this_coro::executor);
  tornado::connect_options options;
  options.timeout = 2s;  // resolution and connection together
  IOStream stream = co_await client.connect("127.0.0.1", port, options);
  co_await stream.write(name + "\n");
  co_await room.wait_for_members(members);  // so that joins are announced in a fixed order
  co_return stream;
}

static asio::awaitable<void> say(IOStream& stream, const char* who, std::string line) {
  std::printf("%s says: %s\n", who, line.c_str());
  co_await stream.write(line + "\n");
}

// The next line `stream` receives must be `expected`.
static asio::awaitable<void> expect(IOStream& stream, const char* who, std::string expected) {
  std::string line = co_await stream.read_until("\n", 1024);
  line.pop_back();
  std::printf("  %s receives: %s\n", who, line.c_str());
  if (line != expected) throw std::runtime_error(std::string(who) + " expected \"" + expected + "\"");
}

static asio::awaitable<void> chat(ChatRoom& room, unsigned short port) {
  IOStream alice = co_await join(room, port, "alice", 1);
  IOStream bob = co_await join(room, port, "bob", 2);
  co_await expect(alice, "alice", "* bob joined");
  IOStream carol = co_await join(room, port, "carol", 3);
  co_await expect(alice, "alice", "* carol joined");
  co_await expect(bob, "bob", "* carol joined");

  co_await say(alice, "alice", "hello, everyone");
  co_await expect(bob, "bob", "alice: hello, everyone");
  co_await expect(carol, "carol", "alice: hello, everyone");

  co_await say(bob, "bob", "hi alice");
  co_await expect(alice, "alice", "bob: hi alice");
  co_await expect(carol, "carol", "bob: hi alice");

  co_await say(carol, "carol", "gotta go, bye");
  carol.close();  // the server sees the close after the line
  co_await expect(alice, "alice", "carol: gotta go, bye");
  co_await expect(alice, "alice", "* carol left");
  co_await expect(bob, "bob", "carol: gotta go, bye");
  co_await expect(bob, "bob", "* carol left");

  alice.close();
  bob.close();
  co_await room.wait_until_empty();
  std::puts("everyone left");
}

int main() try {
  tornado::IOLoop loop;
  ChatRoom room;  // after the loop: destroyed first
  tornado::TCPServer server(loop.get_executor(), [&room](IOStream stream, tcp::endpoint peer) {
    return room.serve(std::move(stream), peer);
  });
  server.listen(0, "127.0.0.1");
  const unsigned short port = server.endpoints().front().port();
  std::printf("chat server on 127.0.0.1:%u\n", unsigned(port));
  loop.run_sync([&] { return chat(room, port); }, 10s);
  server.stop();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "chat_server: %s\n", e.what());
  return 1;
}
