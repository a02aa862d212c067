#include <boost/tornado.hpp>
#include <cstdio>

int main() {
  boost::tornado::IOLoop loop;
  int v = loop.run_sync([]() -> boost::asio::awaitable<int> {
    co_await boost::tornado::gen::sleep(std::chrono::milliseconds(1));
    co_return 42;
  });
  std::printf("consumer: %d\n", v);
  return v == 42 ? 0 : 1;
}
