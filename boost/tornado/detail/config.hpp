// Build configuration: header-only by default; define BOOST_TORNADO_SEPARATE_COMPILATION
// and compile <boost/tornado/src.hpp> once to build the non-template code a single time.
#ifndef BOOST_TORNADO_DETAIL_CONFIG_HPP
#define BOOST_TORNADO_DETAIL_CONFIG_HPP

#include <boost/config.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION < 108100
#error "Boost.Tornado needs Boost 1.81 or newer"
#endif

#if defined(BOOST_TORNADO_SEPARATE_COMPILATION)
#define BOOST_TORNADO_DECL
#else
#define BOOST_TORNADO_HEADER_ONLY 1
#define BOOST_TORNADO_DECL inline
#endif

namespace boost {
namespace asio {}
namespace tornado {
namespace asio = boost::asio;
} // namespace tornado
} // namespace boost

#endif
