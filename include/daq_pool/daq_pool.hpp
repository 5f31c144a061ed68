// Everything in daq_pool, in one include.
#pragma once

#include "daq_pool/broadcast.hpp"
#include "daq_pool/buffer_pool.hpp"
#include "daq_pool/bytes.hpp"
#include "daq_pool/errors.hpp"
#include "daq_pool/loaned.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/pool.hpp"
#include "daq_pool/pooled_buffer.hpp"
#include "daq_pool/stats.hpp"
#include "daq_pool/version.hpp"
