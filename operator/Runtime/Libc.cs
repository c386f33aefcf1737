using System.Runtime.InteropServices;

namespace Skiff.Runtime;

/// <summary>The C library's calls that .NET does not offer.</summary>
internal static class Libc
{
    /// <summary>rename(2), of a symbolic link over another (<see cref="Sources.Git.GitCheckout"/>'s switch).</summary>
    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static extern int Rename([MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);

    /// <summary>madvise(2) (<see cref="Hosting.FilePages"/>).</summary>
    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static extern int Madvise(nint address, nuint length, int advice);
}
