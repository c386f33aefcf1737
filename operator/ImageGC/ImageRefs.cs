using Skiff.Validation;

namespace Skiff.ImageGC;

/// <summary>How GC names an image in its reports.</summary>
internal static class ImageRefs
{
    /// <summary>The reference to show for an image: its first tag, else its first digest, else &lt;none&gt;.</summary>
    public static string Display(ImageInfo image)
    {
        foreach (var tag in image.RepoTags)
        {
            if (!ImageReference.IsPlaceholder(tag))
            {
                return tag;
            }
        }

        foreach (var digest in image.RepoDigests)
        {
            if (!ImageReference.IsPlaceholder(digest))
            {
                return digest;
            }
        }

        return "<none>";
    }

}
