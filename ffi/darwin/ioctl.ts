/**
 * BSD ioctl request numbers (xnu `sys/ioccom.h`, docs/platform.md §4): direction bits,
 * parameter length, group and number packed into 32 bits — computed, not copied, so each
 * constant's derivation is visible. This Linux machine cannot issue them; the values are
 * verified by tests against the spec's table only.
 */
const IOC_OUT = 0x40000000;
const IOC_IN = 0x80000000;
const IOC_PARM_MASK = 0x1fff;

function ioc(direction: number, group: string, num: number, length: number): number {
  return (direction | ((length & IOC_PARM_MASK) << 16) | (group.charCodeAt(0) << 8) | num) >>> 0;
}

/** `_IOW(group, num, length)`: the kernel reads `length` bytes. */
export const iow = (group: string, num: number, length: number) => ioc(IOC_IN, group, num, length);
/** `_IOWR(group, num, length)`: read and written back. */
export const iowr = (group: string, num: number, length: number) =>
  ioc(IOC_IN | IOC_OUT, group, num, length);

/** struct ifreq on macOS: name[16] and a 16-byte union. */
export const IFREQ_SIZE = 32;
/** struct ctl_info: u32 id and name[96]. */
export const CTL_INFO_SIZE = 100;
/** struct in_aliasreq: name[16] and three sockaddr_in. */
export const IN_ALIASREQ_SIZE = 64;

export const CTLIOCGINFO = iowr("N", 3, CTL_INFO_SIZE);
export const SIOCAIFADDR = iow("i", 26, IN_ALIASREQ_SIZE);
export const SIOCDIFADDR = iow("i", 25, IFREQ_SIZE);
export const SIOCSIFMTU = iow("i", 52, IFREQ_SIZE);
export const SIOCGIFMTU = iowr("i", 51, IFREQ_SIZE);
export const SIOCSIFFLAGS = iow("i", 16, IFREQ_SIZE);
export const SIOCGIFFLAGS = iowr("i", 17, IFREQ_SIZE);
