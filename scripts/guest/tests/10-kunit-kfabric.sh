# SPDX-License-Identifier: GPL-2.0
# The kfabric core's KUnit suites, under the guest's debug configuration.
KF_MODES="single"

test_single() {
	kf_kunit kfabric_kunit
}
