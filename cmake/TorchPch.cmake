# One precompiled <torch/torch.h> for every translation unit that parses LibTorch.
#
# Parsing LibTorch's headers is about 25 of the 30-70 seconds such a translation unit takes to compile on 2 cores;
# loading a precompiled copy takes about 6. The copy is built once (about 45 s, by ijepa_torch_pch) and reused by
# every target. A translation unit that does not include LibTorch skips it: loading the 700 MB file would cost it
# those 6 seconds for nothing. Which ones include it is read from the sources (directly, or through a project
# header that does), so a new file needs no CMake change. In a unity build (IJEPA_UNITY_BUILD) the translation
# unit is a batch of a target's sources, and CMake gives the header to the whole batch when the target uses it.

# A source parses LibTorch when it includes a header whose name matches this, or a project header that does.
set(IJEPA_TORCH_HEADER_REGEX "^(torch|ATen)/")

# TRUE when FILE includes LibTorch or one of the project headers in IJEPA_TORCH_HEADERS.
function(_ijepa_parses_torch file out)
  file(STRINGS ${file} includes REGEX "^#include [<\"]")
  list(TRANSFORM includes REPLACE "^#include [<\"]([^>\"]+)[>\"].*$" "\\1")  # the names between <> or ""
  get_property(torch_headers GLOBAL PROPERTY IJEPA_TORCH_HEADERS)
  foreach(name IN LISTS includes)
    if(name MATCHES "${IJEPA_TORCH_HEADER_REGEX}" OR name IN_LIST torch_headers)
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} FALSE PARENT_SCOPE)
endfunction()

# Finds the project headers that include LibTorch, directly or through each other, and records their names as
# they are included (lib/: "model/vit.h"; tests/, which include their headers by file name: "tiny_trainer.h") in
# the global property IJEPA_TORCH_HEADERS.
function(_ijepa_find_torch_headers)
  file(GLOB_RECURSE lib_headers RELATIVE ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/lib/*.h)
  file(GLOB_RECURSE test_paths ${PROJECT_SOURCE_DIR}/tests/*.h)
  set(paths ${lib_headers})
  list(TRANSFORM paths PREPEND ${PROJECT_SOURCE_DIR}/lib/)
  list(APPEND paths ${test_paths})
  set(names ${lib_headers})
  foreach(path IN LISTS test_paths)
    cmake_path(GET path FILENAME name)
    list(APPEND names ${name})
  endforeach()
  set_property(GLOBAL PROPERTY IJEPA_TORCH_HEADERS "")
  list(LENGTH names count)
  math(EXPR last "${count} - 1")
  set(changed TRUE)
  while(changed)  # until no header is added: a header may reach LibTorch through another one
    set(changed FALSE)
    get_property(found GLOBAL PROPERTY IJEPA_TORCH_HEADERS)
    foreach(i RANGE ${last})
      list(GET names ${i} name)
      list(GET paths ${i} path)
      if(NOT name IN_LIST found)
        _ijepa_parses_torch(${path} parses)
        if(parses)
          set_property(GLOBAL APPEND PROPERTY IJEPA_TORCH_HEADERS ${name})
          set(changed TRUE)
        endif()
      endif()
    endforeach()
  endwhile()
endfunction()

# The target that owns the precompiled header. GCC uses it only where the macros its headers test are defined as
# they were when it was built (CMake adds -Winvalid-pch, which names the macro when GCC falls back to parsing):
# same build type, same LibTorch definitions, and -pthread everywhere, since some dependencies (gRPC, MPI) add it to
# their users and it defines _REENTRANT, which glibc's headers test.
function(_ijepa_add_torch_pch_target)
  set(anchor ${CMAKE_BINARY_DIR}/ijepa_torch_pch.cpp)
  file(CONFIGURE OUTPUT ${anchor} CONTENT "// Anchors the precompiled <torch/torch.h> (cmake/TorchPch.cmake).\n")
  add_library(ijepa_torch_pch OBJECT ${anchor})
  target_link_libraries(ijepa_torch_pch PRIVATE ${TORCH_LIBRARIES})
  target_precompile_headers(ijepa_torch_pch PRIVATE <torch/torch.h>)
  target_compile_options(ijepa_torch_pch PRIVATE -pthread)
endfunction()

# Gives TARGET's LibTorch translation units the shared precompiled header; its other sources, and those built
# with options the header was not built with (-fopenmp changes what LibTorch's headers compile to), skip it.
function(ijepa_precompile_torch target)
  get_target_property(sources ${target} SOURCES)
  get_target_property(source_dir ${target} SOURCE_DIR)
  set(uses_torch FALSE)
  foreach(source IN LISTS sources)
    cmake_path(ABSOLUTE_PATH source BASE_DIRECTORY ${source_dir} OUTPUT_VARIABLE path)
    set(parses FALSE)
    get_source_file_property(options ${path} TARGET_DIRECTORY ${target} COMPILE_OPTIONS)
    if(EXISTS ${path} AND source MATCHES "\\.(cpp|cc)$" AND NOT options MATCHES "-fopenmp")
      _ijepa_parses_torch(${path} parses)
    endif()
    if(parses)
      set(uses_torch TRUE)
    else()
      set_source_files_properties(${path} TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
  if(uses_torch)
    target_precompile_headers(${target} REUSE_FROM ijepa_torch_pch)
    target_compile_options(${target} PRIVATE -pthread)
  endif()
endfunction()

# Every library and executable defined under DIR and its subdirectories.
function(_ijepa_targets_under dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(subdir IN LISTS subdirs)
    _ijepa_targets_under(${subdir} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# Called once, after every target is defined.
function(ijepa_precompile_torch_everywhere)
  _ijepa_find_torch_headers()
  _ijepa_add_torch_pch_target()
  _ijepa_targets_under(${PROJECT_SOURCE_DIR} targets)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$" AND NOT target STREQUAL
                                                                                     ijepa_torch_pch)
      ijepa_precompile_torch(${target})
    endif()
  endforeach()
endfunction()
