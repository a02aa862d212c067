// Tests boost/tornado/log.hpp: the hook receives records; the default restores.
#include <boost/tornado/log.hpp>

#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace tornado = boost::tornado;

BOOST_AUTO_TEST_CASE(hook_receives_level_logger_and_message) {
  std::vector<std::string> seen;
  auto prev = tornado::set_log_hook([&](const tornado::log_record& r) {
    seen.push_back(std::to_string(int(r.level)) + " " + std::string(r.logger) + " " + std::string(r.message));
  });
  tornado::log(tornado::log_level::warning, tornado::gen_log, "hello");
  BOOST_TEST(seen.size() == 1u);
  BOOST_TEST(seen[0] == "30 tornado.general hello");
  tornado::set_log_hook(prev);
}

BOOST_AUTO_TEST_CASE(log_exception_appends_the_description) {
  std::string got;
  auto prev = tornado::set_log_hook([&](const tornado::log_record& r) {
    BOOST_TEST(int(r.level) == int(tornado::log_level::error));
    BOOST_TEST(r.logger == "tornado.application");
    got = std::string(r.message);
  });
  tornado::log_exception(tornado::app_log, "Exception in callback",
                         std::make_exception_ptr(std::runtime_error("boom")));
  BOOST_TEST(got == "Exception in callback: boom");
  tornado::set_log_hook(prev);
}

BOOST_AUTO_TEST_CASE(set_log_hook_returns_previous) {
  int a = 0;
  auto prev = tornado::set_log_hook([&](const tornado::log_record&) { ++a; });
  auto mine = tornado::set_log_hook({});
  BOOST_TEST(static_cast<bool>(mine));
  mine(tornado::log_record{tornado::log_level::info, "x", "y"});
  BOOST_TEST(a == 1);
  tornado::set_log_hook(prev);
}
