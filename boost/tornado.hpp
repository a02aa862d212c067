// Boost.Tornado: Tornado's asynchronous primitives for Boost.Asio. Includes every module.
#ifndef BOOST_TORNADO_HPP
#define BOOST_TORNADO_HPP

#include <boost/tornado/async.hpp>
#include <boost/tornado/concurrent.hpp>
#include <boost/tornado/error.hpp>
#include <boost/tornado/gen.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/netutil.hpp>
#include <boost/tornado/platform/asyncio.hpp>
#include <boost/tornado/queues.hpp>
#include <boost/tornado/tcpclient.hpp>
#include <boost/tornado/tcpserver.hpp>

#endif
