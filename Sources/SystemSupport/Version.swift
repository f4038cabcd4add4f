public enum PopfetchVersion {
    public static let current = "0.1.0"
}
