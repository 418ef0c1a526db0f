/* nvml_abi.h — the subset of NVIDIA's NVML ABI that etok uses, declared here so nothing needs
 * nvml.h or links against libnvidia-ml: the nvml meter dlopens the real library, and the test
 * suite's fake library (tests/fakes/fake_nvml.c) implements the same entry points. */
#ifndef ETOK_METER_NVML_ABI_H
#define ETOK_METER_NVML_ABI_H

/* The NVML ABI subset used here (stable since CUDA 9; documented in NVIDIA's nvml.h). */
typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
} nvmlValue_t;
typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;        /* 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint */
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

/* nvmlDeviceGetComputeRunningProcesses (the unversioned symbol: the v1 layout) */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_FI_DEV_POWER_INSTANT 186

#endif
