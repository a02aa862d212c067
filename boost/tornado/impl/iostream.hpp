#ifndef BOOST_TORNADO_IMPL_IOSTREAM_HPP
#define BOOST_TORNADO_IMPL_IOSTREAM_HPP

#include <boost/assert.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>

namespace boost::tornado {

namespace detail {
class certificate_category_impl : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "tornado.certificate"; }
  std::string message(int v) const override {
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
  }
};
} // namespace detail

inline const boost::system::error_category& certificate_category() noexcept {
  static const detail::certificate_category_impl category;
  return category;
}

namespace detail {
// OpenSSL's "certificate verify failed" becomes the reason (certificate_category); any other
// handshake error stays as it is.
template <class Next>
boost::system::error_code certificate_error(boost::asio::ssl::stream<Next>& stream, const boost::system::error_code& ec) {
  if (ec.category() != boost::asio::error::get_ssl_category() ||
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) != SSL_R_CERTIFICATE_VERIFY_FAILED)
    return ec;
  const long result = SSL_get_verify_result(stream.native_handle());
  // Refused by a verify callback (the application's) with no reason of OpenSSL's: OpenSSL 3
  // records that as "unspecified", older ones as OK. Asio's error says it as it is.
  if (result == X509_V_OK || result == X509_V_ERR_UNSPECIFIED) return ec;
  return {static_cast<int>(result), certificate_category()};
}

// Reads that go straight into their result instead of through the buffer.
inline constexpr std::size_t direct_read_threshold = 64 * 1024;

// What `co_await` raises for a stream operation's error: StreamClosedError with the stream's
// real error, or the error's own typed exception.
inline std::exception_ptr stream_exception(const boost::system::error_code& ec,
                                           const boost::system::error_code& real_error) {
  if (ec == error::stream_closed) return std::make_exception_ptr(StreamClosedError(real_error));
  return tornado::make_exception_ptr(ec);
}

template <class Stream>
struct stream_error {
  stream_ref<Stream> stream;
  template <class... T>
  std::exception_ptr operator()(const boost::system::error_code& ec, const T&...) const {
    return stream_exception(ec, stream->error_);
  }
};

inline std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else out += static_cast<char>(c);
  }
  return out;
}

// ---- reads ----

template <class Stream>
template <class Waiter, class Handler, class Configure>
void stream_state<Stream>::begin_read(Handler&& handler, Configure configure) {
  const auto& ex = stream_.get_executor();
  if (kind_ != read_kind::none) {
    // A read still pending on a closed stream is on its way out (a streamed one fails from the
    // loop): the stream is closed, as Tornado says before "already reading".
    const auto ec = closed_ ? closed_error() : make_error_code(error::already_reading);
    if constexpr (std::is_same_v<Waiter, size_waiter>)
      post_completion(std::forward<Handler>(handler), ex, ec, std::size_t(0));
    else
      post_completion(std::forward<Handler>(handler), ex, ec, std::string());
    return;
  }
  try {
    configure(*this);  // may allocate (a large read's result, a regex or delimiter copy)
    // May allocate too (a handler whose waiter does not fit read_storage_); a waiter that
    // cannot be made or armed is never linked.
    enqueue_waiter_in<Waiter>(&read_storage_, ex, std::forward<Handler>(handler), this, read_waiters_, Deadline{});
  } catch (...) {
    clear_read();  // the stream stays as it was: no read pending
    throw;
  }
  if (streaming_mode_) {
    // The chunk callback is user code: it runs from the loop, not from inside this call.
    boost::asio::post(ex, [ref = stream_ref<Stream>(this)] {
      if (ref->kind_ != read_kind::none && ref->streaming_mode_) ref->try_read(false);
    });
    return;
  }
  try_read(true);
}

template <class Stream>
void stream_state<Stream>::drain_into() {
  extras& x = *x_;
  std::size_t n = std::min(rbuf_.size(), x.into.size() - x.into_filled);
  if (!n) return;
  direct_room(x.into_filled + n);
  std::memcpy(static_cast<char*>(x.into.data()) + x.into_filled, rbuf_.data(), n);
  rbuf_.consume(n);
  x.into_filled += n;
}

template <class Stream>
void stream_state<Stream>::try_read(bool initiating) {
  if (try_complete(initiating)) return;
  if (initiating && !reading_io_ && !read_io_posted_ && !filling() && is_reactor_stream<Stream>::value) {
    // A read started with nothing buffered asks the kernel once the loop has run what is
    // ready: asked at once, right after a reply went out, it would almost always find nothing
    // yet and cost a system call for it.
    // No read operation is in flight, so the posted step takes the read operation's slot
    // (and frees it before it runs).
    read_io_posted_ = true;
    post_on(
        stream_.get_executor(),
        [ref = stream_ref<Stream>(this)] {
          ref->read_io_posted_ = false;
          if (ref->kind_ != read_kind::none) ref->start_read_io(read_start::try_now);
        },
        op_slot_allocator<void>(&read_slot_));
    return;
  }
  start_read_io();
}

// Finishes the pending read if the buffer (or the closed stream) allows; true when it is done.
template <class Stream>
bool stream_state<Stream>::try_complete(bool initiating) {
  if (kind_ == read_kind::none) return true;
  if (streaming_mode_) {
    deliver_streaming();
    if (kind_ == read_kind::none) return true;
  } else {
    if (filling()) drain_into();
    bool unsatisfiable = false;
    std::optional<std::size_t> pos = find_read_pos(unsatisfiable);
    if (unsatisfiable && closed_) {
      // Nothing left to close: the read fails as one the closed stream cannot satisfy.
      fail_read(closed_error(), initiating);
      return true;
    }
    if (unsatisfiable) {
      std::string what = kind_ == read_kind::until ? "delimiter " + printable(delim_) : "regex " + printable(x_->regex.str());
      log(log_level::info, gen_log,
          "Unsatisfiable read, closing connection: " + what + " not found within " + std::to_string(max_bytes_) + " bytes");
      close(make_error_code(error::unsatisfiable_read));
      return true;
    }
    if (pos) {
      finish_read(*pos, initiating);
      return true;
    }
  }
  if (closed_) {
    if (kind_ == read_kind::until_close) finish_read(rbuf_.size(), initiating);
    else fail_read(closed_error(), initiating);
    return true;
  }
  return false;
}

template <class Stream>
std::optional<std::size_t> stream_state<Stream>::find_read_pos(bool& unsatisfiable) {
  const std::size_t size = rbuf_.size();
  switch (kind_) {
  case read_kind::bytes:
    if (direct_) return x_->into_filled == x_->into.size() ? std::optional<std::size_t>(x_->into_filled) : std::nullopt;
    if (size >= want_) return want_;
    if (partial_ && size > 0) return size;
    return std::nullopt;
  case read_kind::into:
    if (x_->into_filled == x_->into.size() || (partial_ && x_->into_filled > 0)) return x_->into_filled;
    return std::nullopt;
  case read_kind::until: {
    if (size == 0) return std::nullopt;  // as Tornado: an empty buffer is not searched
    std::string_view buf(rbuf_.data(), size);
    std::size_t loc = std::string_view::npos;
    if (const std::size_t from = std::min(scan_, size); delim_.size() == 1) {  // the usual "\n"
      if (const void* p = std::memchr(buf.data() + from, delim_[0], size - from))
        loc = static_cast<std::size_t>(static_cast<const char*>(p) - buf.data());
    } else {
      loc = buf.find(delim_, from);
    }
    if (loc != std::string_view::npos) {
      std::size_t end = loc + delim_.size();
      if (end > max_bytes_) {
        unsatisfiable = true;
        return std::nullopt;
      }
      return end;
    }
    // A later match can start no earlier than the last delimiter-length-minus-one bytes.
    scan_ = size >= delim_.size() ? size - delim_.size() + 1 : 0;
    if (size > max_bytes_) unsatisfiable = true;
    return std::nullopt;
  }
  case read_kind::regex: {
    if (size == 0) return std::nullopt;
    const char* first = rbuf_.data();
    const char* last = first + size;
    boost::match_flag_type flags = boost::match_default | boost::match_partial;
    std::size_t from = std::min(scan_, size);
    if (from > 0) flags |= boost::match_prev_avail;
    boost::cmatch m;
    if (boost::regex_search(first + from, last, m, x_->regex, flags, first)) {
      if (!m[0].matched) {
        // The leftmost place a match may start, but a partial match there can hide a whole one
        // further on (Boost stops at the first of either): look for that, as Python's search
        // of the whole buffer would find it. None can start before the partial one.
        const std::size_t at = static_cast<std::size_t>(m[0].first - first);
        boost::cmatch whole;
        const auto whole_flags = at > 0 ? boost::match_default | boost::match_prev_avail : boost::match_default;
        if (boost::regex_search(first + at, last, whole, x_->regex, whole_flags, first)) m = whole;
        else scan_ = at;  // a match may still start here
      }
      if (m[0].matched) {
        std::size_t end = static_cast<std::size_t>(m[0].second - first);
        if (end > max_bytes_) {
          unsatisfiable = true;
          return std::nullopt;
        }
        return end;
      }
    } else {
      scan_ = size;
    }
    if (size > max_bytes_) unsatisfiable = true;
    return std::nullopt;
  }
  default:
    return std::nullopt;
  }
}

template <class Stream>
void stream_state<Stream>::finish_read(std::size_t pos, bool initiating) {
  list_node* node = read_waiters_.pop_front();
  if (kind_ == read_kind::into) {
    std::size_t n = x_->into_filled;
    clear_read();
    maybe_listen_for_close();
    auto* w = static_cast<size_waiter*>(node);
    initiating ? w->complete({}, std::move(n)) : w->dispatch({}, std::move(n));
    return;
  }
  std::string result = !direct_ && pos ? string_pool::take() : std::string();
  if (direct_) {
    result = std::move(x_->result);
    result.resize(pos);
  } else if (pos) {
    result.append(rbuf_.data(), pos);  // result is empty: append copies without assign's overlap checks
    rbuf_.consume(pos);
  }
  clear_read();
  maybe_listen_for_close();
  auto* w = static_cast<string_waiter*>(node);
  initiating ? w->complete({}, std::move(result)) : w->dispatch({}, std::move(result));
}

template <class Stream>
void stream_state<Stream>::fail_read(boost::system::error_code ec, bool initiating) {
  list_node* node = read_waiters_.pop_front();
  const read_kind kind = kind_;
  if (filling() && x_->into_filled) {
    // A failed read gives back what it took: nothing is lost to a cancellation or a close
    // (after which reads the buffer can satisfy still succeed). With a read into the buffer in
    // flight (pinned), the bytes were taken from its front while it was pinned, so they go
    // back where they were; otherwise the buffer is rebuilt.
    if (!rbuf_.unread(static_cast<const char*>(x_->into.data()), x_->into_filled)) {
      BOOST_ASSERT(!rbuf_.pinned());
      read_buffer back;
      back.append(static_cast<const char*>(x_->into.data()), x_->into_filled);
      back.append(rbuf_.data(), rbuf_.size());
      rbuf_ = std::move(back);
    }
  }
  clear_read();
  if (!node) return;
  if (kind == read_kind::into) {
    auto* w = static_cast<size_waiter*>(node);
    initiating ? w->complete(std::move(ec), std::size_t(0)) : w->dispatch(std::move(ec), std::size_t(0));
  } else {
    auto* w = static_cast<string_waiter*>(node);
    initiating ? w->complete(std::move(ec), std::string()) : w->dispatch(std::move(ec), std::string());
  }
}

template <class Stream>
void stream_state<Stream>::deliver_streaming() {
  while (kind_ != read_kind::none && !rbuf_.empty()) {
    std::size_t take = kind_ == read_kind::bytes ? std::min(want_, rbuf_.size()) : rbuf_.size();
    std::string_view chunk(rbuf_.data(), take);
    rbuf_.consume(take);  // the bytes stay where they are while the callback runs
    if (kind_ == read_kind::bytes) want_ -= take;
    auto cb = x_->streaming;
    if (take) cb(chunk);
    if (kind_ == read_kind::bytes && want_ == 0) break;
  }
  if (kind_ == read_kind::bytes && want_ == 0) finish_read(0, false);
  else if (kind_ == read_kind::until_close && closed_) finish_read(0, false);
}

template <class Stream>
void stream_state<Stream>::start_read_io(read_start how) {
  if (reading_io_ || closed_ || gated_ || !layer_is_open(stream_)) return;
  boost::asio::mutable_buffer target;
  if (filling()) {
    drain_into();
    std::size_t room = x_->into.size() - x_->into_filled;
    if (direct_) {
      // A direct read_bytes asks for read_chunk_size at a time, as every read does, and its
      // result is zero-filled (std::string::resize: no resize_and_overwrite before C++23)
      // only that far ahead: the zeroed lines are still in cache when the data lands on them.
      room = std::min(room, read_chunk_limit());
      direct_room(x_->into_filled + room);
    }
    target = boost::asio::mutable_buffer(static_cast<char*>(x_->into.data()) + x_->into_filled, room);
    io_direct_ = true;
  } else {
    // The size asked for follows what arrives (doubling when a read fills it, halving when
    // reads stay small), so an idle connection waits on a small buffer and a busy one reads
    // large chunks.
    std::size_t want = std::min(next_read_, read_chunk_limit());
    if (rbuf_.empty() && rbuf_.capacity() > 4 * want) rbuf_.reset();
    target = boost::asio::buffer(rbuf_.prepare(want), want);
    rbuf_.pin();
    last_request_ = want;
    io_direct_ = false;
  }
  reading_io_ = true;
  if constexpr (is_reactor_stream<Stream>::value) {
    const bool now = how == read_start::now_or_watch || (how == read_start::try_now && read_now_.worth_trying());
    if (now && set_non_blocking()) {
      // The loop has run what was ready since this read was asked for: the bytes are most
      // likely there already. Taken here, they complete the read in this step; through the
      // reactor, its own first attempt would find them and post the completion to a step of
      // its own. When nothing is there yet the read goes to the reactor, whose first attempt
      // then costs a second system call: read_now_ stops asking directly while that happens
      // often on this stream.
      boost::system::error_code ec;
      std::size_t n = stream_.read_some(target, ec);
      const bool miss = is_would_block(ec);
      if (how == read_start::try_now) read_now_.record(miss);
      if (!miss) return on_read(ec, n);
      if (how == read_start::now_or_watch) {
        // The close callback's watch reads only here, never through the reactor, whose read
        // could take bytes and complete later, after a start_tls in between has taken the
        // socket. Nothing there after all: watch again.
        reading_io_ = false;
        rbuf_.unpin();
        return maybe_listen_for_close();
      }
    }
  }
  // Only a read into the caller's memory must be stopped when its read is cancelled; a read
  // into the buffer goes on (what it brings stays in the stream), so it carries no slot.
  if (io_direct_)
    stream_.async_read_some(target, boost::asio::bind_cancellation_slot(
                                        read_cancel_.slot(), read_io_handler<Stream>{{stream_ref<Stream>(this)}}));
  else
    stream_.async_read_some(target, read_io_handler<Stream>{{stream_ref<Stream>(this)}});
}

template <class Stream>
void stream_state<Stream>::handle_read_error(const boost::system::error_code& ec) {
  // The write end of a pipe cannot be read: a read kept going only to see the stream close
  // stops there (a failed write will tell).
  if (ec == boost::asio::error::bad_descriptor && kind_ == read_kind::none && layer_is_open(stream_)) {
    write_only_ = true;
    return;
  }
  if (ec == boost::asio::error::eof) return close({});
  if (!is_connection_reset(ec)) log(log_level::warning, gen_log, "Read error: " + ec.message());
  close(ec);
}

template <class Stream>
void stream_state<Stream>::on_read(const boost::system::error_code& ec, std::size_t n) {
  reading_io_ = false;
  if (io_direct_) {
    x_->into_filled += n;
  } else {
    rbuf_.unpin();
    rbuf_.commit(n);
    if (n == last_request_) next_read_ = std::min(next_read_ * 2, read_chunk_limit());
    else if (n < next_read_ / 4 && next_read_ > min_read) next_read_ /= 2;
  }
  if (cancel_pending_) {
    cancel_pending_ = false;
    if (kind_ != read_kind::none) fail_read(boost::asio::error::operation_aborted, false);
  }
  if (closed_) {
    if (io_direct_ && kind_ != read_kind::none && !streaming_mode_) fail_read(closed_error(), false);  // see close()
    return;
  }
  if (ec) {
    if (ec == boost::asio::error::operation_aborted) {
      if (kind_ != read_kind::none) try_read(false);
      else maybe_listen_for_close();
      return;
    }
    return handle_read_error(ec);
  }
  if (!io_direct_ && rbuf_.size() > opts_.max_buffer_size) {
    log(log_level::error, gen_log, "Reached maximum read buffer size");
    return close(make_error_code(error::stream_buffer_full));
  }
  if (kind_ != read_kind::none) try_read(false);
  else maybe_listen_for_close();
}

template <class Stream>
void stream_state<Stream>::maybe_listen_for_close() {
  // With a close callback and nothing to read, watch the stream so that the peer's close is
  // seen (what arrives meanwhile is buffered for the next read).
  if (!has_close_cb() || kind_ != read_kind::none || !rbuf_.empty() || closed_ || write_only_) return;
  if constexpr (is_stream_socket<Stream>::value) {
    // As Tornado's listener, a socket is only watched for readability: nothing leaves the
    // kernel before the loop has run, so the bytes of a TLS handshake that start_tls is about
    // to begin (a ClientHello arrived already) stay where the handshake will read them.
    if (listening_ || reading_io_) return;
    listening_ = true;
    stream_.async_wait(boost::asio::socket_base::wait_read,
                       [ref = stream_ref<Stream>(this)](const boost::system::error_code& ec) {
                         ref->listening_ = false;
                         if (ec || ref->closed_) return;  // closed, or handed to start_tls
                         // Readable: what came, or the end, goes into the buffer in this step.
                         if (ref->kind_ == read_kind::none && ref->rbuf_.empty())
                           ref->start_read_io(read_start::now_or_watch);
                       });
  } else {
    start_read_io();
  }
}

// ---- writes ----

// The stream's own system calls (send_now, start_read_io) must not block: the socket is put in
// non-blocking mode the first time one is made.
template <class Stream>
bool stream_state<Stream>::set_non_blocking() noexcept {
  if (!non_blocking_) {
    boost::system::error_code ec;
    stream_.non_blocking(true, ec);
    non_blocking_ = !ec;
  }
  return non_blocking_;
}

// Sends what the kernel takes now without blocking, straight from the caller's bytes, when
// nothing is queued or in flight (sockets and descriptors): most writes leave in the call that
// makes them, as Tornado's do, with no copy and no operation to complete. Returns the count.
template <class Stream>
std::size_t stream_state<Stream>::send_now(const char* bytes, std::size_t n) {
  std::size_t total = 0;
  if constexpr (is_reactor_stream<Stream>::value) {
    if (!n || writing_io_ || gated_ || closed_ || !wq_.empty() || !write_waiters_.empty()) return 0;
    if (!set_non_blocking()) return 0;
    boost::system::error_code ec;
    while (total < n) {
      std::size_t k = stream_.write_some(boost::asio::const_buffer(bytes + total, n - total), ec);
      if (is_would_block(ec)) break;
      if (ec) {
        if (!is_connection_reset(ec)) log(log_level::warning, gen_log, "Write error: " + ec.message());
        close(ec);
        break;
      }
      total += k;
    }
  }
  return total;
}

template <class Stream>
template <class Handler, class Data>
void stream_state<Stream>::begin_write(Handler&& handler, Data&& data) {
  static_assert(!std::is_reference_v<Data>, "begin_write takes its bytes as an rvalue");
  const std::size_t n = data.size();
  boost::system::error_code ec;
  if (closed_)
    ec = closed_error();
  else if (opts_.max_write_buffer_size != no_limit && wq_.size() + n > opts_.max_write_buffer_size)
    ec = make_error_code(error::stream_buffer_full);
  if (ec) return post_completion(std::forward<Handler>(handler), stream_.get_executor(), ec);
  const char* bytes = static_cast<const char*>(static_cast<const void*>(data.data()));
  const std::size_t sent = send_now(bytes, n);
  total_sent_ += sent;
  if (sent < n && !closed_) {
    // The rest waits in the queue: small data copied, large owned buffers taken.
    try {
      if constexpr (std::is_same_v<Data, boost::asio::const_buffer>) {
        wq_.append_copy(bytes + sent, n - sent);
      } else {
        wq_.append_owned(std::move(data));
        if (sent) wq_.consume(sent);  // the queue was empty: the head piece is this one
      }
    } catch (...) {
      // Not queued (no memory): the exception is the answer, and the count of bytes queued
      // stays true, so later writes complete. If part of it went out, the peer has a write cut
      // short, and what follows would not make sense to it: the stream closes.
      total_queued_ += sent;
      if (sent) close(make_error_code(boost::system::errc::not_enough_memory));
      throw;
    }
  } else if constexpr (std::is_same_v<Data, std::string>) {
    if (sent == n) string_pool::give(std::move(data));  // its memory serves a later read result
  }
  total_queued_ += n;
  try {
    wait_written(std::forward<Handler>(handler), total_queued_);  // may allocate the waiter
  } catch (...) {
    // The bytes went out or are queued, but the caller is told the write failed: a retry
    // would send them twice, and what follows would not make sense to the peer.
    if (n) close(make_error_code(boost::system::errc::not_enough_memory));
    throw;
  }
}

// Completes once every byte up to `end` has been sent.
template <class Stream>
template <class Handler>
void stream_state<Stream>::wait_written(Handler&& handler, std::uint64_t end) {
  const auto& ex = stream_.get_executor();
  // Sent already: a coroutine awaiting with the default token continues at once (as awaiting
  // Tornado's finished Future); any other handler is posted.
  if (total_sent_ >= end) return complete_initiation(std::forward<Handler>(handler), ex, boost::system::error_code());
  if (closed_) return post_completion(std::forward<Handler>(handler), ex, closed_error());
  enqueue_waiter_on<write_waiter>(ex, std::forward<Handler>(handler), this, write_waiters_, Deadline{}, end);
  start_write_io();
}

template <class Stream>
void stream_state<Stream>::start_write_io() {
  if (writing_io_ || closed_ || gated_ || wq_.empty()) return;
  auto bufs = wq_.gather();
  wq_.seal(bufs.n);
  writing_io_ = true;
  // One buffer goes out through send(), several through one sendmsg().
  if (bufs.n == 1)
    stream_.async_write_some(bufs.bufs[0], io_handler<Stream, &stream_state::on_write>{stream_ref<Stream>(this)});
  else
    stream_.async_write_some(bufs, io_handler<Stream, &stream_state::on_write>{stream_ref<Stream>(this)});
}

template <class Stream>
void stream_state<Stream>::on_write(const boost::system::error_code& ec, std::size_t n) {
  writing_io_ = false;
  wq_.unseal();
  if (closed_) {
    wq_.clear();  // kept by close() while this write had its bytes (see there)
    return;
  }
  if (ec) {
    if (!is_connection_reset(ec)) log(log_level::warning, gen_log, "Write error: " + ec.message());
    return close(ec);
  }
  wq_.consume(n);
  total_sent_ += n;
  start_write_io();
  intrusive_list done;
  while (list_node* node = write_waiters_.front()) {
    if (static_cast<write_waiter*>(node)->end > total_sent_) break;
    done.push_back(write_waiters_.pop_front());
  }
  dispatch_all<write_waiter>(done);
}

// Completes the waiters of `done` here. Where a handler runs inline and throws (on a strand,
// whose dispatch does not catch), the others are still completed, posted, before the exception
// leaves: as Asio's own operations, a throwing handler leaves run(), never a waiter behind.
template <class Stream>
template <class Waiter>
void stream_state<Stream>::dispatch_all(intrusive_list& done) {
  try {
    while (list_node* node = done.pop_front()) static_cast<Waiter*>(node)->dispatch({});
  } catch (...) {
    while (list_node* node = done.pop_front()) static_cast<Waiter*>(node)->complete({});
    throw;
  }
}

// ---- connect and handshake ----

template <class Stream>
template <class Handler>
void stream_state<Stream>::add_gate_waiter(Handler&& handler) {
  enqueue_waiter_on<gate_waiter>(stream_.get_executor(), std::forward<Handler>(handler), this, x().gate_waiters, Deadline{});
}

template <class Stream>
void stream_state<Stream>::on_connect(const boost::system::error_code& ec, std::size_t) {
  if (closed_) return;
  if (ec) return close(ec);
  if constexpr (is_ssl_stream<Stream>::value)
    start_handshake(false);
  else
    open_gate({});
}

template <class Stream>
void stream_state<Stream>::start_handshake(bool server_side) {
  if constexpr (is_ssl_stream<Stream>::value) {
    gated_ = true;
    stream_.async_handshake(server_side ? boost::asio::ssl::stream_base::server : boost::asio::ssl::stream_base::client,
                            io_handler<Stream, &stream_state::on_handshake>{stream_ref<Stream>(this)});
  }
}

template <class Stream>
void stream_state<Stream>::on_handshake(const boost::system::error_code& handshake_ec, std::size_t) {
  if (closed_) return;
  if (handshake_ec) {
    boost::system::error_code ec = handshake_ec;
    if constexpr (is_ssl_stream<Stream>::value) ec = certificate_error(stream_, ec);
    if (!is_connection_reset(ec)) log(log_level::warning, gen_log, "SSL Error: " + ec.message());
    return close(ec);
  }
  handshaken_ = true;
  open_gate({});
}

template <class Stream>
void stream_state<Stream>::open_gate(const boost::system::error_code& ec) {
  if (closed_) return;
  if (ec) return close(ec);
  gated_ = false;
  start_write_io();
  if (kind_ != read_kind::none) try_read(false);
  else maybe_listen_for_close();
  intrusive_list done;
  if (x_) {
    done.splice_back(x_->gate_waiters);
    done.splice_back(x_->handshake_waiters);
  }
  dispatch_all<gate_waiter>(done);
}

// ---- close ----

template <class Stream>
void stream_state<Stream>::close(boost::system::error_code ec) {
  if (closed_) return;
  closed_ = true;
  if (ec) error_ = ec;
  // What the buffer can still satisfy completes; read_until_close gets everything. Nothing of
  // the caller's runs in here: streamed chunks go out from the loop.
  if (kind_ != read_kind::none) {
    if (streaming_mode_) {
      boost::asio::post(stream_.get_executor(), [ref = stream_ref<Stream>(this)] {
        if (!ref->streaming_mode_ || ref->kind_ == read_kind::none) return;
        ref->deliver_streaming();
        if (ref->kind_ != read_kind::none) ref->fail_read(ref->closed_error(), false);
      });
    } else if (kind_ == read_kind::until_close) {
      finish_read(rbuf_.size(), true);
    } else {
      if (filling()) drain_into();
      bool unsatisfiable = false;
      std::optional<std::size_t> pos = find_read_pos(unsatisfiable);
      if (pos && !unsatisfiable) finish_read(*pos, true);
    }
  }
  close_socket();
  // A read straight into its destination whose system read is in flight fails when that read
  // returns (on_read): the memory is the system read's until then, as for a cancellation.
  if (kind_ != read_kind::none && !streaming_mode_ && !(reading_io_ && io_direct_)) fail_read(closed_error(), true);
  while (list_node* node = write_waiters_.pop_front()) static_cast<write_waiter*>(node)->complete(closed_error());
  if (x_) {
    while (list_node* node = x_->gate_waiters.pop_front()) static_cast<gate_waiter*>(node)->complete(closed_error());
    while (list_node* node = x_->handshake_waiters.pop_front())
      static_cast<gate_waiter*>(node)->complete(closed_error());
  }
  // The bytes of a write in flight stay until it returns: an operation owns its buffers until
  // its handler runs (a stream that is not a socket may not stop at close; Asio's TLS write
  // may be waiting its turn behind a read). on_write drops them.
  if (!writing_io_) wq_.clear();
  if (x_) {
    if (x_->close_cb && !shutting_down_) boost::asio::post(stream_.get_executor(), std::exchange(x_->close_cb, nullptr));
    x_->close_cb = nullptr;
  }
}

template <class Stream>
void stream_state<Stream>::close_socket() {
  if constexpr (is_ssl_stream<Stream>::value) {
    auto& sock = stream_.lowest_layer();
    boost::system::error_code ignored;
    // Bytes left unread (a TLS 1.3 session ticket, typically) would make the kernel reset the
    // connection and drop what is still queued to send: read them away first.
    if (sock.is_open() && !reading_io_) {
      char scratch[4096];
      bool nb = sock.non_blocking();
      sock.non_blocking(true, ignored);
      for (int i = 0; i < 16 && sock.available(ignored) > 0; ++i)
        if (!stream_.next_layer().read_some(boost::asio::buffer(scratch), ignored)) break;
      sock.non_blocking(nb, ignored);
    }
  }
  close_layer(stream_);
}

template <class Stream>
void stream_state<Stream>::set_close_callback(std::function<void()> cb) {
  if (cb || x_) x().close_cb = std::move(cb);
  if (!gated_) maybe_listen_for_close();
}

// ---- cancellation of a single operation ----

// A cancelled read into the caller's memory (or its result) completes once the system read in
// flight has returned, as that read writes there; a read into the buffer completes at once,
// and what the system read brings stays in the stream.
template <class Stream>
void stream_state<Stream>::cancel_read() {
  if (reading_io_ && io_direct_) {
    cancel_pending_ = true;
    read_cancel_.emit(boost::asio::cancellation_type::terminal);
    return;
  }
  fail_read(boost::asio::error::operation_aborted, true);
}

// A cancelled write stops waiting; its bytes are queued and still go out.
template <class Stream>
void stream_state<Stream>::on_waiter_cancel(write_waiter* w) {
  intrusive_list::unlink(w);
  w->complete(boost::asio::error::operation_aborted);
}

template <class Stream>
void stream_state<Stream>::on_waiter_cancel(gate_waiter* w) {
  intrusive_list::unlink(w);
  w->complete(boost::asio::error::operation_aborted);
}

// ---- initiations ----

template <class Stream, class Waiter>
struct initiate_read {
  stream_ref<Stream> s;  // counted: an operation may start after the stream's handle is gone
  using executor_type = typename Stream::executor_type;
  decltype(auto) get_executor() const { return s->stream_.get_executor(); }
  template <class Handler, class Configure>
  void operator()(Handler&& handler, Configure configure) const {
    s->template begin_read<Waiter>(std::forward<Handler>(handler), std::move(configure));
  }
};

template <class Stream>
struct initiate_write {
  stream_ref<Stream> s;
  using executor_type = typename Stream::executor_type;
  decltype(auto) get_executor() const { return s->stream_.get_executor(); }
  // The bytes are moved on, not copied, unless the caller keeps them (an operation started
  // more than once passes its arguments as lvalues).
  template <class Handler, class Data>
  void operator()(Handler&& handler, Data&& data) const {
    if constexpr (std::is_lvalue_reference_v<Data>)
      s->begin_write(std::forward<Handler>(handler), std::decay_t<Data>(data));
    else
      s->begin_write(std::forward<Handler>(handler), std::move(data));
  }
};

template <class Stream>
struct initiate_gate {
  stream_ref<Stream> s;
  using executor_type = typename Stream::executor_type;
  decltype(auto) get_executor() const { return s->stream_.get_executor(); }
};

} // namespace detail

// ---- BaseIOStream ----

template <class Stream>
BaseIOStream<Stream>::BaseIOStream(Stream stream, stream_options options)
    : state_(new detail::stream_state<Stream>(options, std::move(stream))) {}

template <class Stream>
BaseIOStream<Stream>& BaseIOStream<Stream>::operator=(BaseIOStream&& other) noexcept {
  if (this != &other) {
    if (state_) {
      state_->close({});
      state_->release();
    }
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

template <class Stream>
BaseIOStream<Stream>::~BaseIOStream() {
  if (state_) {
    state_->close({});
    state_->release();
  }
}

template <class Stream>
template <class Sig, class Init, class... Args>
auto BaseIOStream<Stream>::awaited(Init init, Args&&... args) const {
  return detail::make_awaited_op<Sig>(std::move(init), detail::stream_error<Stream>{detail::stream_ref<Stream>(state_)},
                                      std::forward<Args>(args)...);
}

#define BOOST_TORNADO_STREAM_OP(T, Waiter, configure)                                                   \
  using init_t = detail::initiate_read<Stream, typename detail::stream_state<Stream>::Waiter>;          \
  if constexpr (detail::is_default_token<Token>)                                                        \
    return awaited<void(boost::system::error_code, T)>(init_t{detail::stream_ref(state_)}, configure);                      \
  else                                                                                                  \
    return boost::asio::async_initiate<Token, void(boost::system::error_code, T)>(init_t{detail::stream_ref(state_)}, token, \
                                                                                   configure)

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::read_bytes(std::size_t n, bool partial, Token&& token) {
  auto configure = [n, partial](detail::stream_state<Stream>& s) {
    s.kind_ = detail::read_kind::bytes;
    s.want_ = n;
    s.partial_ = partial;
    if (!partial && n >= detail::direct_read_threshold && n <= s.opts_.max_buffer_size && s.rbuf_.size() < n) {
      // A large read goes straight into its result: no copy through the buffer. Only within
      // max_buffer_size: a larger one goes through the buffer and fails when it fills, as in
      // Tornado, so that a peer's length cannot make the stream hold more than the limit.
      s.direct_ = true;
      auto& x = s.x();
      x.result.reserve(n);  // sized as the bytes come (direct_room)
      x.into = boost::asio::buffer(x.result.data(), n);
      x.into_filled = 0;
    }
  };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, configure);
}

template <class Stream>
template <class Chunk, class Token>
  requires std::is_invocable_v<Chunk&, std::string_view>
auto BaseIOStream<Stream>::read_bytes(std::size_t n, Chunk chunk, Token&& token) {
  auto configure = [n, chunk = streaming_callback(std::move(chunk))](detail::stream_state<Stream>& s) mutable {
    s.kind_ = detail::read_kind::bytes;
    s.want_ = n;
    s.streaming_mode_ = true;
    s.x().streaming = std::move(chunk);
  };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, std::move(configure));
}

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::read_until(std::string_view delimiter, std::size_t max_bytes, Token&& token) {
  if (delimiter.empty()) throw std::invalid_argument("read_until: empty delimiter");
  auto configure = [d = detail::delimiter_copy(delimiter), max_bytes](detail::stream_state<Stream>& s) {
    s.kind_ = detail::read_kind::until;
    if (s.delim_ != d.view()) s.delim_.assign(d.view());
    s.max_bytes_ = max_bytes;
    s.scan_ = 0;
  };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, std::move(configure));
}

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::read_until_regex(const boost::regex& regex, std::size_t max_bytes, Token&& token) {
  auto configure = [regex, max_bytes](detail::stream_state<Stream>& s) {
    s.kind_ = detail::read_kind::regex;
    s.x().regex = regex;
    s.max_bytes_ = max_bytes;
    s.scan_ = 0;
  };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, std::move(configure));
}

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::read_into(boost::asio::mutable_buffer buffer, bool partial, Token&& token) {
  auto configure = [buffer, partial](detail::stream_state<Stream>& s) {
    s.kind_ = detail::read_kind::into;
    s.x().into = buffer;
    s.x().into_filled = 0;
    s.partial_ = partial;
  };
  BOOST_TORNADO_STREAM_OP(std::size_t, size_waiter, configure);
}

template <class Stream>
template <class Token>
  requires(!std::is_invocable_v<Token&, std::string_view>)
auto BaseIOStream<Stream>::read_until_close(Token&& token) {
  auto configure = [](detail::stream_state<Stream>& s) { s.kind_ = detail::read_kind::until_close; };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, configure);
}

template <class Stream>
template <class Chunk, class Token>
  requires std::is_invocable_v<Chunk&, std::string_view>
auto BaseIOStream<Stream>::read_until_close(Chunk chunk, Token&& token) {
  auto configure = [chunk = streaming_callback(std::move(chunk))](detail::stream_state<Stream>& s) mutable {
    s.kind_ = detail::read_kind::until_close;
    s.streaming_mode_ = true;
    s.x().streaming = std::move(chunk);
  };
  BOOST_TORNADO_STREAM_OP(std::string, string_waiter, std::move(configure));
}

#undef BOOST_TORNADO_STREAM_OP

#define BOOST_TORNADO_WRITE_OP(data)                                                                     \
  using init_t = detail::initiate_write<Stream>;                                                         \
  if constexpr (detail::is_default_token<Token>)                                                         \
    return awaited<void(boost::system::error_code)>(init_t{detail::stream_ref(state_)}, data);                              \
  else                                                                                                   \
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(init_t{detail::stream_ref(state_)}, token, data)

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::write(std::string_view data, Token&& token) {
  // The bytes are copied when the write starts: a deferred write must not outlive them.
  BOOST_TORNADO_WRITE_OP(boost::asio::const_buffer(data.data(), data.size()));
}

template <class Stream>
template <class Token>
auto BaseIOStream<Stream>::write(boost::asio::const_buffer data, Token&& token) {
  BOOST_TORNADO_WRITE_OP(data);
}

template <class Stream>
template <class Owned, class Token>
  requires detail::owned_bytes<Owned>
auto BaseIOStream<Stream>::write(Owned&& data, Token&& token) {
  BOOST_TORNADO_WRITE_OP(std::move(data));
}

#undef BOOST_TORNADO_WRITE_OP

template <class Stream>
void BaseIOStream<Stream>::set_nodelay(bool value) {
  auto& sock = detail::lowest_layer_of(state_->stream_);
  if constexpr (requires { sock.set_option(boost::asio::ip::tcp::no_delay(value)); }) {
    boost::system::error_code ignored;  // closed or not TCP after all: as Tornado, ignore
    sock.set_option(boost::asio::ip::tcp::no_delay(value), ignored);
  }
}

// ---- basic_iostream ----

namespace detail {
template <class Stream, class Endpoint>
struct initiate_connect : initiate_gate<Stream> {
  template <class Handler>
  void operator()(Handler&& handler, Endpoint endpoint) const {
    auto* s = this->s.get();
    if (s->closed_) return post_completion(std::forward<Handler>(handler), s->stream_.get_executor(), s->closed_error());
    s->gated_ = true;
    s->add_gate_waiter(std::forward<Handler>(handler));
    lowest_layer_of(s->stream_).async_connect(endpoint, io_handler<Stream, &stream_state<Stream>::on_connect>{stream_ref<Stream>(s)});
  }
};

template <class Stream>
struct initiate_resolve_connect : initiate_gate<Stream> {
  template <class Handler>
  void operator()(Handler&& handler, std::string host, unsigned short port) const {
    auto* s = this->s.get();
    if (s->closed_) return post_completion(std::forward<Handler>(handler), s->stream_.get_executor(), s->closed_error());
    s->gated_ = true;
    s->add_gate_waiter(std::forward<Handler>(handler));
    auto resolver = std::make_unique<boost::asio::ip::tcp::resolver>(s->stream_.get_executor());
    auto& r = *resolver;
    r.async_resolve(host, std::to_string(port),
                    [ref = stream_ref<Stream>(s), resolver = std::move(resolver)](
                        const boost::system::error_code& ec, boost::asio::ip::tcp::resolver::results_type results) {
                      if (ref->closed_) return;
                      if (ec) return ref->close(ec);
                      boost::asio::async_connect(lowest_layer_of(ref->stream_), results,
                                                 [ref](const boost::system::error_code& ec, const auto&) {
                                                   ref->on_connect(ec, 0);
                                                 });
                    });
  }
};
} // namespace detail

template <class Protocol>
template <class Token>
auto basic_iostream<Protocol>::connect(const endpoint_type& endpoint, Token&& token) {
  using init_t = detail::initiate_connect<socket_type, endpoint_type>;
  if constexpr (detail::is_default_token<Token>)
    return this->template awaited<void(boost::system::error_code)>(init_t{{detail::stream_ref(this->state_)}}, endpoint);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(init_t{{detail::stream_ref(this->state_)}}, token, endpoint);
}

template <class Protocol>
template <class Token>
auto basic_iostream<Protocol>::connect(std::string host, unsigned short port, Token&& token) {
  static_assert(std::is_same_v<Protocol, boost::asio::ip::tcp>, "connect(host, port) is for TCP");
  using init_t = detail::initiate_resolve_connect<socket_type>;
  if constexpr (detail::is_default_token<Token>)
    return this->template awaited<void(boost::system::error_code)>(init_t{{detail::stream_ref(this->state_)}}, std::move(host), port);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(init_t{{detail::stream_ref(this->state_)}}, token,
                                                                               std::move(host), port);
}

namespace detail {
inline void configure_tls_client(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream,
                                 std::string server_hostname, bool verify) {
  if (server_hostname.empty()) {
    boost::system::error_code ec;
    auto ep = stream.lowest_layer().remote_endpoint(ec);
    if (!ec) server_hostname = ep.address().to_string();
  }
  boost::system::error_code addr_ec;
  boost::asio::ip::make_address(server_hostname, addr_ec);
  // SNI names a host, never an address (RFC 6066); the certificate must name either.
  if (addr_ec && !server_hostname.empty())
    SSL_set_tlsext_host_name(stream.native_handle(), server_hostname.c_str());
  if (verify) {
    stream.set_verify_mode(boost::asio::ssl::verify_peer);
    // OpenSSL checks the name (or address) itself, as Python's ssl module has it do, so that a
    // mismatch has a verify result of its own (X509_V_ERR_HOSTNAME_MISMATCH,
    // X509_V_ERR_IP_ADDRESS_MISMATCH). With no name to check, nothing passes.
    X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
    const int named = server_hostname.empty() ? 0
                      : addr_ec ? X509_VERIFY_PARAM_set1_host(param, server_hostname.data(), server_hostname.size())
                                : X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname.c_str());
    if (named != 1) {
      // A name OpenSSL does not take (an IPv6 address with a zone, say): Asio's check, which
      // gives a refusal the reason OpenSSL's own check would.
      stream.set_verify_callback([check = boost::asio::ssl::host_name_verification(server_hostname),
                                  address = !addr_ec](bool preverified, boost::asio::ssl::verify_context& ctx) {
        if (check(preverified, ctx)) return true;
        if (preverified)
          X509_STORE_CTX_set_error(ctx.native_handle(),
                                   address ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
        return false;
      });
    }
  } else {
    stream.set_verify_mode(boost::asio::ssl::verify_none);
  }
}

template <class Protocol>
struct initiate_start_tls {
  stream_ref<boost::asio::basic_stream_socket<Protocol>> s;
  using executor_type = typename boost::asio::basic_stream_socket<Protocol>::executor_type;
  decltype(auto) get_executor() const { return s->stream_.get_executor(); }
  template <class Handler>
  void operator()(Handler&& handler, bool server_side, boost::asio::ssl::context* context,
                  std::string server_hostname, bool verify) const;
};
} // namespace detail

namespace detail {
// The new stream carries the handshake's error.
struct start_tls_error {
  std::exception_ptr operator()(const boost::system::error_code& ec, const SSLIOStream& stream) const {
    return stream_exception(ec, stream.error());
  }
};
} // namespace detail

template <class Protocol>
template <class Token>
auto basic_iostream<Protocol>::start_tls(bool server_side, boost::asio::ssl::context& context,
                                         std::string_view server_hostname, bool verify, Token&& token) {
  static_assert(std::is_same_v<Protocol, boost::asio::ip::tcp>, "start_tls is for TCP");
  using init_t = detail::initiate_start_tls<Protocol>;
  if constexpr (detail::is_default_token<Token>)
    return detail::make_awaited_op<void(boost::system::error_code, SSLIOStream)>(
        init_t{detail::stream_ref(this->state_)}, detail::start_tls_error{}, server_side, &context, std::string(server_hostname), verify);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code, SSLIOStream)>(
        init_t{detail::stream_ref(this->state_)}, token, server_side, &context, std::string(server_hostname), verify);
}

// ---- SSLIOStream ----

inline SSLIOStream::SSLIOStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context,
                                stream_options options)
    : base(ssl_stream_type(std::move(socket), context), options) {}

inline SSLIOStream::SSLIOStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context,
                                bool server_side, std::string_view server_hostname, bool verify, stream_options options)
    : base(ssl_stream_type(std::move(socket), context), options) {
  if (!server_side) detail::configure_tls_client(state_->stream_, std::string(server_hostname), verify);
  state_->start_handshake(server_side);
}

namespace detail {
template <class Endpoint>
struct initiate_ssl_connect : initiate_gate<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> {
  template <class Handler>
  void operator()(Handler&& handler, Endpoint endpoint, std::string server_hostname, bool verify) const {
    auto* s = this->s.get();
    if (s->closed_) return post_completion(std::forward<Handler>(handler), s->stream_.get_executor(), s->closed_error());
    if (server_hostname.empty()) server_hostname = endpoint.address().to_string();
    configure_tls_client(s->stream_, std::move(server_hostname), verify);
    s->gated_ = true;
    s->add_gate_waiter(std::forward<Handler>(handler));
    using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
    s->stream_.lowest_layer().async_connect(endpoint, [ref = stream_ref<Stream>(s)](const boost::system::error_code& ec) {
      ref->on_connect(ec, 0);
    });
  }
};

struct initiate_wait_for_handshake : initiate_gate<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> {
  template <class Handler>
  void operator()(Handler&& handler) const {
    auto* s = this->s.get();
    auto ex = s->stream_.get_executor();
    if (s->closed_) return post_completion(std::forward<Handler>(handler), ex, s->closed_error());
    if (s->x_ && !s->x_->handshake_waiters.empty())
      return post_completion(std::forward<Handler>(handler), ex, make_error_code(error::invalid_state));
    if (s->handshaken_ && !s->gated_) return post_completion(std::forward<Handler>(handler), ex, boost::system::error_code());
    enqueue_waiter_on<typename stream_state<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>::gate_waiter>(
        ex, std::forward<Handler>(handler), s, s->x().handshake_waiters, Deadline{});
  }
};
} // namespace detail

template <class Token>
auto SSLIOStream::connect(const boost::asio::ip::tcp::endpoint& endpoint, std::string_view server_hostname, bool verify,
                          Token&& token) {
  using init_t = detail::initiate_ssl_connect<boost::asio::ip::tcp::endpoint>;
  if constexpr (detail::is_default_token<Token>)
    return awaited<void(boost::system::error_code)>(init_t{{detail::stream_ref(state_)}}, endpoint, std::string(server_hostname), verify);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(init_t{{detail::stream_ref(state_)}}, token, endpoint,
                                                                               std::string(server_hostname), verify);
}

template <class Token>
auto SSLIOStream::wait_for_handshake(Token&& token) {
  using init_t = detail::initiate_wait_for_handshake;
  if constexpr (detail::is_default_token<Token>)
    return awaited<void(boost::system::error_code)>(init_t{{detail::stream_ref(state_)}});
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(init_t{{detail::stream_ref(state_)}}, token);
}

template <class Protocol>
template <class Handler>
void detail::initiate_start_tls<Protocol>::operator()(Handler&& handler, bool server_side,
                                                      boost::asio::ssl::context* context, std::string server_hostname,
                                                      bool verify) const {
  auto ex = s->stream_.get_executor();
  if (s->closed_ || !s->idle()) {
    // The stream handed back is closed with this one's reason: a coroutine's
    // StreamClosedError takes its real_error() from it.
    SSLIOStream none(boost::asio::ip::tcp::socket(ex), *context);
    if (s->closed_) none.close(s->error_);
    return post_completion(std::forward<Handler>(handler), ex,
                           make_error_code(s->closed_ ? error::stream_closed : error::invalid_state), std::move(none));
  }
  // The watch kept for the close callback ends here (see maybe_listen_for_close).
  boost::system::error_code ignored;
  if (s->reading_io_ || s->listening_) s->stream_.cancel(ignored);
  auto close_cb = s->x_ ? std::exchange(s->x_->close_cb, nullptr) : std::function<void()>();
  // The socket moves to the new stream; this one is left closed.
  auto tls = std::make_unique<SSLIOStream>(std::move(s->stream_), *context, server_side, std::move(server_hostname), verify,
                                           s->opts_);
  s->close({});
  if (close_cb) tls->set_close_callback(std::move(close_cb));
  auto& ref = *tls;
  // The caller's cancellation reaches the handshake wait; a cancelled start_tls closes the new
  // stream, which a handshake left half done makes useless.
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  ref.wait_for_handshake(boost::asio::bind_cancellation_slot(
      slot, [h = std::forward<Handler>(handler), tls = std::move(tls), ex](boost::system::error_code ec) mutable {
        if (ec == boost::asio::error::operation_aborted && !tls->closed()) tls->close(ec);
        post_completion(std::move(h), ex, ec, std::move(*tls));
      }));
}

// ---- PipeIOStream ----

namespace detail {
inline void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old{};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  });
}
} // namespace detail

inline PipeIOStream::PipeIOStream(const boost::asio::any_io_executor& ex, int fd, stream_options options)
    : PipeIOStream(boost::asio::posix::stream_descriptor(ex, fd), options) {}

inline PipeIOStream::PipeIOStream(boost::asio::posix::stream_descriptor descriptor, stream_options options)
    : base((detail::ignore_sigpipe(), std::move(descriptor)), options) {}

} // namespace boost::tornado

#endif
