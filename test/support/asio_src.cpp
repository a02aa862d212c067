// Asio's non-template code, compiled once for the tests, examples and benchmarks.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
