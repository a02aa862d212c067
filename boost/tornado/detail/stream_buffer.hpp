// The buffers behind an IOStream: a read buffer consumed from the front without moving the
// bytes left behind, and a write queue that copies small writes into one reused block and
// keeps large owned buffers as they are (no copy), gathered into one system call.
#ifndef BOOST_TORNADO_DETAIL_STREAM_BUFFER_HPP
#define BOOST_TORNADO_DETAIL_STREAM_BUFFER_HPP

#include <boost/asio/buffer.hpp>
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace boost::tornado::detail {

class read_buffer {
public:
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  const char* data() const noexcept { return data_.get() + begin_; }
  std::size_t capacity() const noexcept { return cap_; }

  // Drops n bytes from the front; the rest stays where it is.
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_ && !pinned_) begin_ = end_ = 0;
  }

  // While a read into the space after the data is in flight, that space must stay where it
  // is: nothing moves or reallocates the block until unpin().
  void pin() noexcept { pinned_ = true; }
  void unpin() noexcept { pinned_ = false; }
  bool pinned() const noexcept { return pinned_; }

  // Puts back in front of the data n bytes consumed from there while the buffer was pinned
  // (nothing moved since): false when there is no room before the data.
  bool unread(const char* p, std::size_t n) noexcept {
    if (begin_ < n) return false;
    begin_ -= n;
    std::memmove(data_.get() + begin_, p, n);
    return true;
  }

  // At least `want` writable bytes after the data: the data moves to the front only when that
  // makes the room, and the block grows only when even that is not enough.
  boost::asio::mutable_buffer prepare(std::size_t want) {
    if (cap_ - end_ < want) {
      if (cap_ - size() >= want && begin_ > 0) {
        std::memmove(data_.get(), data_.get() + begin_, size());
      } else {
        std::size_t cap = std::max(size() + want, cap_ + cap_ / 2);
        std::unique_ptr<char[]> bigger(new char[cap]);
        if (!empty()) std::memcpy(bigger.get(), data(), size());
        data_ = std::move(bigger);
        cap_ = cap;
      }
      end_ = size();
      begin_ = 0;
    }
    return {data_.get() + end_, cap_ - end_};
  }
  void commit(std::size_t n) noexcept { end_ += n; }

  void append(const char* p, std::size_t n) {
    if (!n) return;
    prepare(n);
    std::memcpy(data_.get() + end_, p, n);
    end_ += n;
  }

  // Frees the block of an empty, unpinned buffer.
  void reset() noexcept {
    if (!empty() || pinned_) return;
    data_.reset();
    cap_ = begin_ = end_ = 0;
  }

private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
  bool pinned_ = false;
};

// Strings whose memory goes round: a read's result is usually written back (an echo, a
// proxy) and, once sent, its block serves the next result -- no allocation per message.
struct string_pool {
  static constexpr std::size_t max_strings = 16;
  static constexpr std::size_t max_capacity = 64 * 1024;
  static std::vector<std::string>& strings() {
    thread_local std::vector<std::string> pool;
    return pool;
  }
  // An empty string, with a recycled block when there is one.
  static std::string take() {
    std::string s;  // one named result: returned without a move
    auto& pool = strings();
    if (!pool.empty()) {
      s.swap(pool.back());
      pool.pop_back();
      s.clear();
    }
    return s;
  }
  static void give(std::string&& s) noexcept {
    auto& pool = strings();
    if (s.capacity() > 15 && s.capacity() <= max_capacity && pool.size() < max_strings) pool.push_back(std::move(s));
  }
};

class write_queue {
public:
  // Owned buffers larger than this are kept as they are; smaller data is copied (Tornado's
  // _StreamBuffer draws the same line).
  static constexpr std::size_t copy_threshold = 2048;
  static constexpr std::size_t max_gather = 16;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  void append_copy(const void* p, std::size_t n) {
    if (!n) return;
    if (pieces_.size() == head_ || !pieces_.back().copied || pieces_.size() <= sealed_) {
      piece pc;
      pc.copied = true;
      pc.s = string_pool::take();
      // Never in the string object itself: the bytes must not move when the piece does.
      pc.s.reserve(std::max<std::size_t>(n, 256));
      pieces_.push_back(std::move(pc));
    }
    pieces_.back().s.append(static_cast<const char*>(p), n);
    size_ += n;
  }

  // Whether a string's bytes live inside the object (the small-string buffer, whose size
  // differs between standard libraries): moving the string moves them.
  static bool bytes_inside(const std::string& s) noexcept {
    const auto* object = reinterpret_cast<const char*>(&s);
    const std::less<const char*> before;
    return !before(s.data(), object) && before(s.data(), object + sizeof(s));
  }

  template <class Owned>
  void append_owned(Owned&& owned) {
    std::size_t n = owned.size();
    // A small buffer joins the data before it; alone in the queue a string is taken as it is
    // (unless its bytes live inside the object, where they would move with it).
    if (n <= copy_threshold) {
      bool take = false;
      if constexpr (std::is_same_v<std::decay_t<Owned>, std::string>)
        take = pieces_.size() == head_ && !bytes_inside(owned);
      if (!take) return append_copy(owned.data(), n);
    }
    if (!n) return;
    piece pc;
    if constexpr (std::is_same_v<std::decay_t<Owned>, std::string>)
      pc.s = std::move(owned);
    else
      pc.take(std::move(owned));
    pieces_.push_back(std::move(pc));
    size_ += n;
  }

  // A buffer sequence carried by the write operation itself (the stream keeps no room for it).
  struct gathered {
    std::array<boost::asio::const_buffer, max_gather> bufs;
    std::size_t n = 0;
    const boost::asio::const_buffer* begin() const noexcept { return bufs.data(); }
    const boost::asio::const_buffer* end() const noexcept { return bufs.data() + n; }
  };

  // Up to max_gather buffers from the front, for one gathered write.
  gathered gather() const noexcept {
    gathered out;
    for (std::size_t i = head_; i < pieces_.size() && out.n < max_gather; ++i) {
      const piece& pc = pieces_[i];
      std::size_t off = i == head_ ? offset_ : 0;
      out.bufs[out.n++] = boost::asio::const_buffer(pc.data() + off, pc.size() - off);
    }
    return out;
  }

  // The first k pieces are being written: nothing is appended to them until unseal().
  void seal(std::size_t k) noexcept { sealed_ = head_ + k; }
  void unseal() noexcept { sealed_ = 0; }

  void consume(std::size_t n) noexcept {
    size_ -= n;
    while (n) {
      piece& pc = pieces_[head_];
      std::size_t left = pc.size() - offset_;
      if (n < left) {
        offset_ += n;
        return;
      }
      n -= left;
      pop_front();
    }
  }

  void clear() noexcept {
    while (head_ < pieces_.size()) pop_front();
    size_ = 0;
  }

private:
  struct piece {
    std::string s;  // a copied block or an owned string, unless a vector is held
    // An owned vector (its bytes stay put when the piece moves), and where they are.
    std::variant<std::monostate, std::vector<char>, std::vector<unsigned char>, std::vector<std::byte>> v;
    const char* vbytes = nullptr;
    std::size_t vsize = 0;
    bool copied = false;
    template <class Vector>
    void take(Vector&& owned) {
      auto& held = v.template emplace<std::decay_t<Vector>>(std::move(owned));
      vbytes = reinterpret_cast<const char*>(held.data());
      vsize = held.size();
    }
    bool holds_vector() const noexcept { return vbytes != nullptr; }
    const char* data() const noexcept { return vbytes ? vbytes : s.data(); }
    std::size_t size() const noexcept { return vbytes ? vsize : s.size(); }
  };

  void pop_front() noexcept {
    piece& pc = pieces_[head_];
    // The block goes to this thread's pool, not kept per stream.
    if (!pc.holds_vector()) string_pool::give(std::move(pc.s));
    pc = piece();
    offset_ = 0;
    if (++head_ == pieces_.size()) {
      pieces_.clear();
      head_ = 0;
    } else if (head_ >= 16 && 2 * head_ >= pieces_.size()) {
      pieces_.erase(pieces_.begin(), pieces_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  std::vector<piece> pieces_;
  std::size_t head_ = 0, offset_ = 0, size_ = 0, sealed_ = 0;
};

} // namespace boost::tornado::detail

#endif
