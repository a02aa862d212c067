// A move-only `void()` callable with a small buffer: the loop's timers and done callbacks
// store user callables without allocating when they are small.
#ifndef BOOST_TORNADO_DETAIL_CALLBACK_HPP
#define BOOST_TORNADO_DETAIL_CALLBACK_HPP

#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace boost::tornado::detail {

class callback {
public:
  static constexpr std::size_t buffer_size = 6 * sizeof(void*);

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= buffer_size &&
                                      alignof(F) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<F>;

  callback() noexcept = default;

  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, callback>>>
  callback(F&& f) {
    using Fn = std::decay_t<F>;
    if constexpr (fits_inline<Fn>) {
      ::new (static_cast<void*>(buf_)) Fn(std::forward<F>(f));
      vt_ = &inline_vtable<Fn>;
    } else {
      ::new (static_cast<void*>(buf_)) Fn*(new Fn(std::forward<F>(f)));
      vt_ = &heap_vtable<Fn>;
    }
  }

  callback(callback&& other) noexcept : vt_(other.vt_) {
    if (vt_) {
      vt_->move(buf_, other.buf_);
      other.vt_ = nullptr;
    }
  }

  callback& operator=(callback&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.vt_) {
        other.vt_->move(buf_, other.buf_);
        vt_ = std::exchange(other.vt_, nullptr);
      }
    }
    return *this;
  }

  ~callback() { reset(); }

  explicit operator bool() const noexcept { return vt_ != nullptr; }
  void operator()() { vt_->invoke(buf_); }

  void reset() noexcept {
    if (vt_) std::exchange(vt_, nullptr)->destroy(buf_);
  }

private:
  struct vtable {
    void (*invoke)(void*);
    void (*move)(void* dst, void* src) noexcept;
    void (*destroy)(void*) noexcept;
  };

  template <class Fn>
  static constexpr vtable inline_vtable{
      [](void* p) { (*static_cast<Fn*>(p))(); },
      [](void* dst, void* src) noexcept {
        ::new (dst) Fn(std::move(*static_cast<Fn*>(src)));
        static_cast<Fn*>(src)->~Fn();
      },
      [](void* p) noexcept { static_cast<Fn*>(p)->~Fn(); }};

  template <class Fn>
  static constexpr vtable heap_vtable{
      [](void* p) { (**static_cast<Fn**>(p))(); },
      [](void* dst, void* src) noexcept { ::new (dst) Fn*(*static_cast<Fn**>(src)); },
      [](void* p) noexcept { delete *static_cast<Fn**>(p); }};

  alignas(std::max_align_t) unsigned char buf_[buffer_size];
  const vtable* vt_ = nullptr;
};

} // namespace boost::tornado::detail

#endif
