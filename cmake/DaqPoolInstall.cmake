# Install rules (headers, package config, pkg-config file).
install(TARGETS daq_pool EXPORT daq_pool-targets FILE_SET HEADERS)
