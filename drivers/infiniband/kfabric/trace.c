// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric tracepoints.
 */
#define CREATE_TRACE_POINTS
#include <trace/events/kfabric.h>
