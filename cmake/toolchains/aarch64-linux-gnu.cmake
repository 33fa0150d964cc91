# Cross-compiles edgepipe for 64-bit Arm Linux with Debian/Ubuntu's cross
# toolchain:  apt-get install g++-aarch64-linux-gnu
# Run the results on the board, or here under qemu-user:
#   qemu-aarch64 -L /usr/aarch64-linux-gnu ./edgepipe_run model.tflite
#
# Another GNU triplet or sysroot (e.g. a Yocto SDK) works the same way:
#   -DEDGEPIPE_CROSS_TRIPLET=aarch64-poky-linux -DCMAKE_SYSROOT=/path/to/sysroot
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGEPIPE_CROSS_TRIPLET "aarch64-linux-gnu" CACHE STRING "GNU triplet of the cross compiler")
set(CMAKE_C_COMPILER ${EDGEPIPE_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${EDGEPIPE_CROSS_TRIPLET}-g++)

# Debian's cross packages install the target's headers and libraries under
# /usr/<triplet>; look for target libraries there, and for programs on the host.
if(NOT CMAKE_SYSROOT AND EXISTS /usr/${EDGEPIPE_CROSS_TRIPLET})
  set(CMAKE_FIND_ROOT_PATH /usr/${EDGEPIPE_CROSS_TRIPLET})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run() and CTest run target binaries through qemu when it is installed.
find_program(EDGEPIPE_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(EDGEPIPE_QEMU_AARCH64 AND EXISTS /usr/${EDGEPIPE_CROSS_TRIPLET})
  set(CMAKE_CROSSCOMPILING_EMULATOR ${EDGEPIPE_QEMU_AARCH64} -L /usr/${EDGEPIPE_CROSS_TRIPLET})
endif()
