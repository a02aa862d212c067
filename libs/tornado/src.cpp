// The separately compiled Boost.Tornado library.
#include <boost/tornado/src.hpp>
