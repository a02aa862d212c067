// With link2.cpp: two translation units that include every header link into one program.
#define BOOST_TEST_MODULE link
#include <boost/tornado.hpp>
#include <boost/test/unit_test.hpp>

int link2_answer();

BOOST_AUTO_TEST_CASE(two_translation_units_link) {
  boost::tornado::IOLoop loop;
  BOOST_TEST(loop.run_sync([] { return link2_answer(); }) == 42);
}
