/* empty.c — libetok.so is etokcore linked whole (cmake/Install.cmake); this file gives the target a source. */
typedef int etok_empty_translation_unit;
