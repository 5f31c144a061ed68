// Everything in daq_pool, in one include.
#pragma once

#include "daq_pool/errors.hpp"
#include "daq_pool/loaned.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/pool.hpp"
#include "daq_pool/stats.hpp"
#include "daq_pool/version.hpp"
