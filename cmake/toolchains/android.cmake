# Cross-compiles edgepipe for Android with the user's NDK (r26a or newer, the
# minimum LiteRT documents). This file only picks defaults and hands over to
# the NDK's own toolchain file:
#
#   export ANDROID_NDK=$HOME/Android/Sdk/ndk/27.2.12479018
#   cmake --preset android-arm64 && cmake --build --preset android-arm64
#
# Override with -DANDROID_ABI=x86_64 (emulator), -DANDROID_PLATFORM=android-28 ...
# The NDK cannot be installed from a package registry; get it from Android
# Studio's SDK manager or `sdkmanager "ndk;27.2.12479018"`.
if(NOT ANDROID_NDK)
  if(DEFINED ENV{ANDROID_NDK} AND NOT "$ENV{ANDROID_NDK}" STREQUAL "")
    set(ANDROID_NDK "$ENV{ANDROID_NDK}")
  elseif(DEFINED ENV{ANDROID_NDK_HOME} AND NOT "$ENV{ANDROID_NDK_HOME}" STREQUAL "")
    set(ANDROID_NDK "$ENV{ANDROID_NDK_HOME}")
  endif()
endif()
if(NOT ANDROID_NDK OR NOT EXISTS "${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
  message(FATAL_ERROR
    "edgepipe: the Android build needs an NDK. Set ANDROID_NDK (or ANDROID_NDK_HOME) "
    "to the NDK folder, the one containing build/cmake/android.toolchain.cmake "
    "(e.g. ~/Android/Sdk/ndk/27.2.12479018). Got: '${ANDROID_NDK}'.")
endif()
# Cached, so a re-configure without the environment variable still finds it.
set(ANDROID_NDK "${ANDROID_NDK}" CACHE PATH "Android NDK root" FORCE)

if(NOT ANDROID_ABI)
  set(ANDROID_ABI arm64-v8a)
endif()
# API 26 (Android 8.0): what LiteRT's CompiledModel AAR required until 2.1
# (23 since); raise it with -DANDROID_PLATFORM=android-NN, never lower than
# the LiteRT build you ship supports.
if(NOT ANDROID_PLATFORM)
  set(ANDROID_PLATFORM android-26)
endif()
# ANDROID_STL stays the NDK's default (c++_static): edgepipe talks to
# libLiteRt.so only through its C API, so no C++ types cross that boundary.
# An app whose other native libraries use c++_shared should pass
# -DANDROID_STL=c++_shared to keep one C++ runtime per process.

include("${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
# try_compile() projects re-read this file; make them see the same NDK even
# when it was given as -DANDROID_NDK rather than in the environment.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ANDROID_NDK)
