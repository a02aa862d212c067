#include <boost/tornado.hpp>

int link2_answer() {
  boost::tornado::Future<int> f(boost::tornado::IOLoop::current().get_executor());
  f.set_result(42);
  return f.result();
}
