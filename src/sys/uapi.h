/* The kernel UAPI headers whose ioctl numbers and structs lvsnap uses;
 * build.rs runs bindgen over this file (see src/sys/mod.rs). */
#include <stddef.h> /* size_t, which _IOR(0x12, 114, size_t) names */
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/dm-ioctl.h>
