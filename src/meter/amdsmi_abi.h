/* amdsmi_abi.h — the subset of AMD's amd-smi library ABI (libamd_smi.so, ROCm) that etok
 * uses, declared here so nothing needs amdsmi.h or links against libamd_smi: the amdsmi meter
 * dlopens the real library, and the test suite's fake library (tests/fakes/fake_amdsmi.c)
 * implements the same entry points.
 *
 * Only entry points whose signatures have not changed across amd-smi releases are used (no
 * structs: amdsmi_power_info_t / amdsmi_asic_info_t changed layout between ROCm releases):
 *   amdsmi_status_t amdsmi_init(uint64_t init_flags);
 *   amdsmi_status_t amdsmi_shut_down(void);
 *   amdsmi_status_t amdsmi_status_code_to_string(amdsmi_status_t, const char **);
 *   amdsmi_status_t amdsmi_get_socket_handles(uint32_t *count, amdsmi_socket_handle *handles);
 *   amdsmi_status_t amdsmi_get_processor_handles(amdsmi_socket_handle, uint32_t *count,
 *                                                amdsmi_processor_handle *handles);
 *   amdsmi_status_t amdsmi_get_energy_count(amdsmi_processor_handle, uint64_t *energy_accumulator,
 *                                           float *counter_resolution, uint64_t *timestamp);
 *   amdsmi_status_t amdsmi_get_gpu_bdf_id(amdsmi_processor_handle, uint64_t *bdfid);
 * The handle arrays may be NULL to ask only for the count. counter_resolution is in µJ per
 * count; timestamp in ns. Enum values as in amd-smi's amdsmi.h. */
#ifndef ETOK_METER_AMDSMI_ABI_H
#define ETOK_METER_AMDSMI_ABI_H

#include <stdint.h>

/* amdsmi_status_t is a C enum whose largest members are 0xFFFFFFFE/0xFFFFFFFF, so its
 * underlying type is unsigned int. */
typedef unsigned int amdsmi_status_t;
typedef void *amdsmi_processor_handle;
typedef void *amdsmi_socket_handle;

/* amdsmi_init_flags_t */
#define AMDSMI_INIT_AMD_GPUS (1u << 1)

/* amdsmi_status_t values used by etok */
#define AMDSMI_STATUS_SUCCESS 0u
#define AMDSMI_STATUS_INVAL 1u
#define AMDSMI_STATUS_NOT_SUPPORTED 2u
#define AMDSMI_STATUS_FILE_ERROR 14u
#define AMDSMI_STATUS_NO_PERM 10u
#define AMDSMI_STATUS_INIT_ERROR 18u
#define AMDSMI_STATUS_NOT_FOUND 31u
#define AMDSMI_STATUS_NOT_INIT 32u
#define AMDSMI_STATUS_DRIVER_NOT_LOADED 34u
#define AMDSMI_STATUS_FILE_NOT_FOUND 52u
#define AMDSMI_STATUS_UNKNOWN_ERROR 0xFFFFFFFFu

#endif
