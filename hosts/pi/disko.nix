# The Pi's disk, laid out like the SD image: a FAT firmware partition (the Pi's boot ROM reads it: GPU firmware,
# U-Boot, config.txt) and an ext4 root that holds /boot/extlinux. GPT works on the Pi 4 family (boot EEPROM from
# 2020 on); the root partition carries the "legacy BIOS bootable" attribute, which is how U-Boot finds the
# partition with extlinux.conf.
# The target: `/dev/mmcblk0` is the SD card, a USB SSD is usually `/dev/sda`; override
# `disko.devices.disk.main.device` before installing.
{
  config,
  lib,
  pkgs,
  ...
}: let
  firmwareDir = "${config.disko.rootMountPoint}/boot/firmware";
  raspberrypiBoot = "${pkgs.raspberrypifw}/share/raspberrypi/boot";
  configTxt = pkgs.writeText "config.txt" ''
    [pi4]
    kernel=u-boot-rpi4.bin
    enable_gic=1
    armstub=armstub8-gic.bin
    disable_overscan=1
    arm_boost=1

    [cm4]
    otg_mode=1

    [all]
    arm_64bit=1
    enable_uart=1
    avoid_warnings=1
  '';
in {
  disko.devices.disk.main = {
    type = "disk";
    device = lib.mkDefault "/dev/mmcblk0";
    content = {
      type = "gpt";
      partitions = {
        FIRMWARE = {
          type = "EF00";
          size = "512M";
          content = {
            type = "filesystem";
            format = "vfat";
            extraArgs = ["-n" "FIRMWARE"];
            mountpoint = "/boot/firmware";
            # Not needed at run time, like the SD image's firmware partition.
            mountOptions = ["noauto" "nofail" "umask=0077"];
            postMountHook = ''
              cp ${raspberrypiBoot}/start4*.elf ${raspberrypiBoot}/fixup4*.dat ${firmwareDir}/
              cp ${raspberrypiBoot}/bcm2711-rpi-4-b.dtb ${raspberrypiBoot}/bcm2711-rpi-400.dtb \
                ${raspberrypiBoot}/bcm2711-rpi-cm4.dtb ${firmwareDir}/
              cp ${pkgs.ubootRaspberryPi4_64bit}/u-boot.bin ${firmwareDir}/u-boot-rpi4.bin
              cp ${pkgs.raspberrypi-armstubs}/armstub8-gic.bin ${firmwareDir}/
              cp ${configTxt} ${firmwareDir}/config.txt
            '';
          };
        };
        root = {
          size = "100%";
          attributes = [2];
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/";
            mountOptions = ["noatime"];
          };
        };
      };
    };
  };
}
