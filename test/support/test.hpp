// Shared helpers for the tests: log capture and a loop fixture.
#ifndef BOOST_TORNADO_TEST_SUPPORT_TEST_HPP
#define BOOST_TORNADO_TEST_SUPPORT_TEST_HPP

#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/log.hpp>
#include <boost/test/unit_test.hpp>
#include <mutex>
#include <string>
#include <vector>

namespace test {

// Captures the library's log records for the lifetime of the object.
class log_capture {
public:
  log_capture() {
    prev_ = boost::tornado::set_log_hook([this](const boost::tornado::log_record& r) {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::string(r.logger) + ": " + std::string(r.message));
    });
  }
  ~log_capture() { boost::tornado::set_log_hook(prev_); }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  bool contains(const std::string& needle) const {
    std::lock_guard lock(mutex_);
    for (auto& l : lines_)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return lines_.size();
  }

private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  boost::tornado::log_hook prev_;
};

// A fresh loop made current for each test case.
struct loop_fixture {
  boost::tornado::IOLoop loop;
  loop_fixture() { loop.make_current(); }
  // Runs what is ready now (io_context::poll after restart: a context that ran out of work
  // stays stopped until restarted).
  std::size_t poll() {
    loop.context().restart();
    return loop.context().poll();
  }
  ~loop_fixture() { boost::tornado::IOLoop::clear_current(); }
};

} // namespace test

#endif
