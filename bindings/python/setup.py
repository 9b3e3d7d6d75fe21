"""Only for the wheel's tag: with libqwen.so inside (make wheel), the wheel is for this
platform (py3-none-linux_x86_64), not pure Python; everything else is in pyproject.toml."""
import os
import sysconfig

from setuptools import setup

from setuptools.command.bdist_wheel import bdist_wheel   # setuptools >= 70.1


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = not os.path.exists(os.path.join(os.path.dirname(__file__), "qwen_embed", "libqwen.so"))

    def get_tag(self):
        if self.root_is_pure:
            return super().get_tag()
        return "py3", "none", sysconfig.get_platform().replace("-", "_").replace(".", "_")


setup(cmdclass={"bdist_wheel": PlatformWheel})
