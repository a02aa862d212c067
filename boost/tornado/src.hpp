// Compile this header in exactly one translation unit of a program built with
// BOOST_TORNADO_SEPARATE_COMPILATION defined: it holds the library's non-template code.
#ifndef BOOST_TORNADO_SRC_HPP
#define BOOST_TORNADO_SRC_HPP

#ifndef BOOST_TORNADO_SEPARATE_COMPILATION
#error "Define BOOST_TORNADO_SEPARATE_COMPILATION to use <boost/tornado/src.hpp>"
#endif

#include <boost/tornado.hpp>
#include <boost/tornado/impl/error.ipp>
#include <boost/tornado/impl/ioloop.ipp>
#include <boost/tornado/impl/log.ipp>
#include <boost/tornado/impl/netutil.ipp>

#endif
