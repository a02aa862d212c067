// What an IOStream handle points to: the Asio stream, its buffers, the pending read, the
// pending writes and the I/O in flight. The handle holds one reference and every Asio
// operation in flight another, so destroying the handle closes the stream and the state goes
// once the last operation has returned. Used from the stream's executor only.
#ifndef BOOST_TORNADO_DETAIL_STREAM_STATE_HPP
#define BOOST_TORNADO_DETAIL_STREAM_STATE_HPP

#include <boost/tornado/async.hpp>
#include <boost/tornado/error.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/detail/stream_buffer.hpp>
#include <boost/tornado/detail/wait_list.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/regex.hpp>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace boost::tornado {

// max_bytes of an unbounded read, max_write_buffer_size of an unlimited write buffer.
inline constexpr std::size_t no_limit = static_cast<std::size_t>(-1);

struct stream_options {
  std::size_t max_buffer_size = 100 * 1024 * 1024;  // read buffer; past it the stream closes
  std::size_t read_chunk_size = 64 * 1024;          // most bytes one read system call asks for
  std::size_t max_write_buffer_size = no_limit;     // past it a write fails, the stream stays open
};

namespace detail {

// Buffers a write takes over instead of copying: a std::string, or a std::vector of char,
// unsigned char (std::uint8_t) or std::byte, as an rvalue.
template <class T>
concept owned_bytes = std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<char>> ||
                      std::is_same_v<T, std::vector<unsigned char>> || std::is_same_v<T, std::vector<std::byte>>;

enum class read_kind : std::uint8_t { none, bytes, until, regex, into, until_close };

template <class Stream>
struct is_ssl_stream : std::false_type {};
template <class Next>
struct is_ssl_stream<boost::asio::ssl::stream<Next>> : std::true_type {};

// Sockets and descriptors: they can also write without blocking.
template <class Stream>
struct is_reactor_stream : std::false_type {};
template <class Protocol, class Executor>
struct is_reactor_stream<boost::asio::basic_stream_socket<Protocol, Executor>> : std::true_type {};
template <class Executor>
struct is_reactor_stream<boost::asio::posix::basic_stream_descriptor<Executor>> : std::true_type {};
template <class Stream>
struct is_stream_socket : std::false_type {};
template <class Protocol, class Executor>
struct is_stream_socket<boost::asio::basic_stream_socket<Protocol, Executor>> : std::true_type {};

// Whether a stream's read start should ask the kernel directly, in its posted step (see
// start_read_io). A hit completes the read in that step: the reply goes out a loop step
// earlier, which also makes the peer's next bytes more likely to be there in time for the
// next read. A miss costs one system call more than handing the read to the reactor at once
// (which tries once itself). Kept per stream, over its last 8 tries: only a stream that found
// nothing all 8 times (an idle connection, a peer slower than the server) stops asking, but
// for one read start in 8, to see when that changes. (Stopping at lower miss rates was
// measured worse: a read through the reactor replies a step later, and its next read then
// misses more often.)
struct read_now_odds {
  std::uint8_t misses = 0;  // the last 8 tries, a bit each (1: found nothing)
  std::uint8_t skipped = 0;
  bool worth_trying() noexcept { return misses != 0xff || ++skipped % 8 == 0; }
  void record(bool miss) noexcept { misses = std::uint8_t(misses << 1 | (miss ? 1 : 0)); }
};

// The layer that is opened and closed: a socket or descriptor itself, the lowest layer of a
// layered stream (asio::ssl::stream, asio::buffered_stream, ...), the socket of a
// beast::basic_stream; else the stream itself.
template <class Stream>
auto& lowest_layer_of(Stream& s) {
  if constexpr (requires { s.lowest_layer(); })
    return s.lowest_layer();
  else if constexpr (requires { s.socket(); })
    return s.socket();
  else
    return s;
}

template <class Layer>
concept closable_layer = requires(Layer& l, boost::system::error_code& ec) {
  { l.is_open() } -> std::convertible_to<bool>;
  l.close(ec);
};

// Whether the stream underneath is open. A stream of the user's that cannot say counts as
// open: the stream state's own closed_ then decides.
template <class Stream>
bool layer_is_open(Stream& s) {
  auto& l = lowest_layer_of(s);
  if constexpr (closable_layer<std::remove_reference_t<decltype(l)>>)
    return l.is_open();
  else
    return true;
}

// Closes the stream underneath. One that cannot be closed (neither it nor a lower layer has
// is_open and close(error_code&)) is only no longer used: closing it is up to its owner.
template <class Stream>
void close_layer(Stream& s) {
  auto& l = lowest_layer_of(s);
  if constexpr (closable_layer<std::remove_reference_t<decltype(l)>>) {
    boost::system::error_code ignored;
    l.close(ignored);
  }
}

// A non-blocking system call that found nothing to do (no bytes to read, no room to write).
inline bool is_would_block(const boost::system::error_code& ec) {
  return ec == boost::asio::error::would_block || ec == boost::asio::error::try_again;
}

// Errors after which a stream closes quietly, keeping the error (Tornado's _is_connreset).
inline bool is_connection_reset(const boost::system::error_code& ec) {
  namespace e = boost::asio::error;
  return ec == e::connection_reset || ec == e::connection_aborted || ec == e::broken_pipe ||
         ec == e::timed_out || ec == e::eof || ec == e::shut_down || ec == e::not_connected ||
         ec == boost::asio::ssl::error::stream_truncated;
}

// The streams living on an execution context. When the context is destroyed with operations
// still waiting in a stream (a coroutine suspended in a read, say), the registry frees them as
// Asio frees its own pending operations; otherwise the coroutine and the stream it owns would
// keep each other alive.
struct registered_stream : list_node {
  void (*on_shutdown)(registered_stream*) = nullptr;
};

class stream_registry : public boost::asio::detail::execution_context_service_base<stream_registry> {
public:
  explicit stream_registry(boost::asio::execution_context& ctx)
      : boost::asio::detail::execution_context_service_base<stream_registry>(ctx) {}
  void add(registered_stream* s) {
    std::lock_guard lock(mutex_);
    streams_.push_back(s);
  }
  void remove(registered_stream* s) {
    std::lock_guard lock(mutex_);
    if (s->linked()) intrusive_list::unlink(s);
  }
  void shutdown() override {
    std::unique_lock lock(mutex_);
    while (list_node* n = streams_.pop_front()) {
      lock.unlock();
      auto* s = static_cast<registered_stream*>(n);
      s->on_shutdown(s);
      lock.lock();
    }
    shut_ = true;
  }
  bool shut() const noexcept { return shut_; }

private:
  std::mutex mutex_;
  intrusive_list streams_;
  bool shut_ = false;
};

// A read_until delimiter carried by a lazy operation: short ones (all the usual ones) inline,
// so that moving the operation around moves no string.
class delimiter_copy {
public:
  explicit delimiter_copy(std::string_view d) : n_(d.size()) {
    if (n_ <= sizeof(small_)) {
      std::memcpy(small_, d.data(), n_);
    } else {
      big_ = std::make_unique<char[]>(n_);
      std::memcpy(big_.get(), d.data(), n_);
    }
  }
  delimiter_copy(const delimiter_copy& o) : delimiter_copy(o.view()) {}
  delimiter_copy(delimiter_copy&&) noexcept = default;
  std::string_view view() const noexcept { return {n_ <= sizeof(small_) ? small_ : big_.get(), n_}; }

private:
  std::size_t n_;
  char small_[16];
  std::unique_ptr<char[]> big_;
};

// Memory for the one read operation a stream has in flight. Asio allocates an operation with
// its handler's allocator; the read handler's allocator takes this slot, so a connection
// waiting to read holds the operation inside its state instead of in a block of the thread's
// cache (which, after an accept, is the accept's larger block). What does not fit (a TLS read,
// a read with a cancellation slot) and anything asked while the slot is taken goes to Asio's
// recycling allocator, as it would without this.
class op_slot {
public:
  // A TCP or local socket's receive operation with the state's read handler: 168 B on
  // Boost 1.81, x86-64.
  static constexpr std::size_t capacity = 176;
  void* take(std::size_t n) noexcept {
    if (used_ || n > capacity) return nullptr;
    used_ = true;
    return bytes_;
  }
  bool give_back(void* p) noexcept {
    if (p != static_cast<void*>(bytes_)) return false;
    used_ = false;
    return true;
  }

private:
  alignas(std::max_align_t) unsigned char bytes_[capacity];
  bool used_ = false;
};

template <class T>
struct op_slot_allocator {
  using value_type = T;
  op_slot* slot;
  explicit op_slot_allocator(op_slot* s) noexcept : slot(s) {}
  template <class U>
  op_slot_allocator(const op_slot_allocator<U>& o) noexcept : slot(o.slot) {}
  T* allocate(std::size_t n) {
    if constexpr (alignof(T) <= alignof(std::max_align_t))
      if (void* p = slot->take(sizeof(T) * n)) return static_cast<T*>(p);
    return boost::asio::recycling_allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!slot->give_back(p)) boost::asio::recycling_allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const op_slot_allocator<U>& o) const noexcept {
    return slot == o.slot;
  }
};

template <class Stream>
class stream_state : public registered_stream {
public:
  using executor_type = typename Stream::executor_type;
  using string_waiter = prim_waiter<boost::system::error_code, std::string>;
  using size_waiter = prim_waiter<boost::system::error_code, std::size_t>;
  struct write_waiter : prim_waiter<boost::system::error_code> {
    std::uint64_t end;
    write_waiter(const typename prim_waiter<boost::system::error_code>::ops* o, std::uint64_t e) noexcept
        : prim_waiter<boost::system::error_code>(o), end(e) {}
  };
  struct gate_waiter : prim_waiter<boost::system::error_code> {
    explicit gate_waiter(const typename prim_waiter<boost::system::error_code>::ops* o) noexcept
        : prim_waiter<boost::system::error_code>(o) {}
  };

  template <class... A>
  explicit stream_state(stream_options opts, A&&... a) : stream_(std::forward<A>(a)...), opts_(opts) {
    if (opts_.read_chunk_size == 0) opts_.read_chunk_size = 1;
    on_shutdown = [](registered_stream* r) { static_cast<stream_state*>(r)->shutdown(); };
    auto& ctx = boost::asio::query(stream_.get_executor(), boost::asio::execution::context);
    registry_ = &boost::asio::use_service<stream_registry>(ctx);
    registry_->add(this);
  }

  // The context is going away: pending operations are destroyed without running.
  void shutdown() noexcept {
    add_ref();
    shutting_down_ = true;
    registry_ = nullptr;
    // Unlinked first: destroying a handler may destroy a coroutine that closes this stream.
    intrusive_list reads, writes, gates;
    reads.splice_back(read_waiters_);
    writes.splice_back(write_waiters_);
    if (x_) {
      gates.splice_back(x_->gate_waiters);
      gates.splice_back(x_->handshake_waiters);
    }
    const bool into = kind_ == read_kind::into;
    kind_ = read_kind::none;
    while (list_node* n = reads.pop_front())
      into ? static_cast<size_waiter*>(n)->destroy() : static_cast<string_waiter*>(n)->destroy();
    while (list_node* n = writes.pop_front()) static_cast<write_waiter*>(n)->destroy();
    while (list_node* n = gates.pop_front()) static_cast<gate_waiter*>(n)->destroy();
    release();
  }

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  // ---- reads ----
  template <class Waiter, class Handler, class Configure>
  void begin_read(Handler&& handler, Configure configure);
  void try_read(bool initiating);
  bool try_complete(bool initiating);
  std::optional<std::size_t> find_read_pos(bool& unsatisfiable);
  void finish_read(std::size_t pos, bool initiating);
  void fail_read(boost::system::error_code ec, bool initiating);
  template <class Waiter>
  void dispatch_all(intrusive_list& done);
  // The stream stops reading: the read's flags are reset and what the extras held for it (a
  // streaming callback, the caller's buffer, a direct result) is let go, so take from them first.
  void clear_read() noexcept {
    kind_ = read_kind::none;
    direct_ = streaming_mode_ = partial_ = false;
    scan_ = 0;
    if (x_) x_->end_read();
  }
  // How a system read starts: through Asio's reactor; asking the kernel first when that has
  // been paying off on this stream (read_now_); or, for the close callback's watch on a socket
  // that became readable, asking the kernel only, and watching again when nothing is there.
  enum class read_start { reactor, try_now, now_or_watch };
  void start_read_io(read_start how = read_start::reactor);
  bool set_non_blocking() noexcept;
  void handle_read_error(const boost::system::error_code& ec);
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void deliver_streaming();
  // Tornado's limit: one read never asks for more than half the buffer's maximum.
  std::size_t read_chunk_limit() const noexcept {
    return std::max<std::size_t>(1, std::min(opts_.read_chunk_size, opts_.max_buffer_size / 2));
  }
  bool filling() const noexcept { return kind_ == read_kind::into || (kind_ == read_kind::bytes && direct_); }
  // A direct read_bytes' result covers its first `upto` bytes (see start_read_io).
  void direct_room(std::size_t upto) {
    if (direct_ && x_->result.size() < upto) x_->result.resize(upto);
  }
  void drain_into();
  void maybe_listen_for_close();

  // ---- writes ----
  template <class Handler, class Data>
  void begin_write(Handler&& handler, Data&& data);
  std::size_t send_now(const char* bytes, std::size_t n);
  template <class Handler>
  void wait_written(Handler&& handler, std::uint64_t end);
  void start_write_io();
  void on_write(const boost::system::error_code& ec, std::size_t n);

  // ---- connect / handshake: while gated_, no I/O starts ----
  template <class Handler>
  void add_gate_waiter(Handler&& handler);
  void open_gate(const boost::system::error_code& ec);
  void on_connect(const boost::system::error_code& ec, std::size_t);
  void on_handshake(const boost::system::error_code& ec, std::size_t);
  void start_handshake(bool server_side);
  // No pending operation and both buffers empty (a read kept going only to see the peer close
  // does not count).
  bool idle() const noexcept {
    return kind_ == read_kind::none && wq_.empty() && rbuf_.empty() && write_waiters_.empty() &&
           gates_empty() && !gated_ && !closed_;
  }

  void close(boost::system::error_code ec);
  void close_socket();
  void set_close_callback(std::function<void()> cb);

  // Waiter-list hooks.
  null_mutex& waiter_mutex() noexcept { return mutex_; }
  template <class W>
  void on_waiter_timeout(W*) {}
  void on_waiter_cancel(string_waiter*) { cancel_read(); }
  void on_waiter_cancel(size_waiter*) { cancel_read(); }
  void cancel_read();
  void on_waiter_cancel(write_waiter* w);
  void on_waiter_cancel(gate_waiter* w);

  boost::system::error_code closed_error() const { return make_error_code(error::stream_closed); }

  Stream stream_;
  stream_options opts_;
  std::size_t refs_ = 1;
  null_mutex mutex_;

  read_buffer rbuf_;
  read_kind kind_ = read_kind::none;
  bool partial_ = false;
  bool streaming_mode_ = false;
  bool direct_ = false;          // the read in flight writes into x_->into (caller's memory or x_->result)
  bool cancel_pending_ = false;  // a direct read was cancelled; completes when its I/O returns
  std::size_t want_ = 0;         // read_bytes: bytes still wanted
  std::size_t max_bytes_ = no_limit;
  std::size_t scan_ = 0;         // bytes of the buffer searched without a match starting there
  static constexpr std::size_t min_read = 256;
  std::size_t next_read_ = min_read;
  std::size_t last_request_ = 0;
  std::string delim_;
  intrusive_list read_waiters_;  // at most one
  waiter_storage read_storage_;  // where it is made, when it fits
  bool reading_io_ = false;
  bool read_io_posted_ = false;  // a read waits for the loop to ask the kernel
  bool listening_ = false;       // a socket is watched for the close callback
  bool io_direct_ = false;       // the read in flight targets x_->into, not the buffer
  read_now_odds read_now_;
  boost::asio::cancellation_signal read_cancel_;
  op_slot read_slot_;

  write_queue wq_;
  std::uint64_t total_queued_ = 0, total_sent_ = 0;
  intrusive_list write_waiters_;
  bool writing_io_ = false;
  bool non_blocking_ = false;
  bool write_only_ = false;  // the write end of a pipe

  bool gated_ = false;
  bool handshaken_ = !is_ssl_stream<Stream>::value;

  bool closed_ = false;
  bool shutting_down_ = false;  // the io_context is being destroyed
  boost::system::error_code error_;

  // What only some streams use, made the first time one does: the regex, into, direct
  // read_bytes and streaming reads, connect and handshake waits, the close callback. Kept out
  // of the state so that an idle connection does not carry it.
  struct extras {
    boost::regex regex;
    boost::asio::mutable_buffer into;
    std::size_t into_filled = 0;
    std::string result;  // read_bytes read straight into its result
    std::function<void(std::string_view)> streaming;
    intrusive_list gate_waiters;       // connect (and the handshake after it)
    intrusive_list handshake_waiters;  // wait_for_handshake (at most one)
    std::function<void()> close_cb;
    void end_read() noexcept {
      streaming = nullptr;
      into = {};
      into_filled = 0;
      result = std::string();
    }
  };
  std::unique_ptr<extras> x_;
  extras& x() {
    if (!x_) x_ = std::make_unique<extras>();
    return *x_;
  }
  bool has_close_cb() const noexcept { return x_ && x_->close_cb; }
  bool gates_empty() const noexcept { return !x_ || (x_->gate_waiters.empty() && x_->handshake_waiters.empty()); }

private:
  ~stream_state() {
    if (registry_) registry_->remove(this);
  }
  stream_registry* registry_ = nullptr;
};

// A counted reference to the state (the library's coroutines hold one while they wait).
template <class Stream>
class stream_ref {
public:
  explicit stream_ref(stream_state<Stream>* s) noexcept : s_(s) { s_->add_ref(); }
  stream_ref(const stream_ref& o) noexcept : s_(o.s_) { s_->add_ref(); }
  stream_ref(stream_ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  stream_ref& operator=(const stream_ref&) = delete;
  ~stream_ref() {
    if (s_) s_->release();
  }
  stream_state<Stream>* operator->() const noexcept { return s_; }
  stream_state<Stream>* get() const noexcept { return s_; }

private:
  stream_state<Stream>* s_;
};

// The completion handler of the state's own Asio operations: holds a reference, runs a
// member function. Its executor is the stream's; its allocator is Asio's recycled memory,
// except a read's, which takes the state's read_slot_ (the reference the operation holds keeps
// that memory alive until Asio has freed the operation). Direct reads carry the state's
// cancellation slot.
template <class Stream, auto Member>
struct io_handler {
  stream_ref<Stream> ref;
  void operator()(const boost::system::error_code& ec, std::size_t n = 0) { (ref.get()->*Member)(ec, n); }
};

template <class Stream>
struct read_io_handler : io_handler<Stream, &stream_state<Stream>::on_read> {
  using allocator_type = op_slot_allocator<void>;
  allocator_type get_allocator() const noexcept { return allocator_type(&this->ref->read_slot_); }
};

} // namespace detail
} // namespace boost::tornado

#endif
